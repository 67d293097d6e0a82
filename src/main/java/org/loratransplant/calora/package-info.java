/**
 * CA-LoRA (METHODS.md section 4): a LoRA trained on a base moved onto a compressed copy of that
 * base. The source LoRA is inherited as the starting point, a low-rank non-linear recovery module
 * {@code sigma(x D) U} is added beside each adapted projection, and both are trained on the task
 * loss plus {@code alpha} times the MSE of hidden states against the uncompressed base + LoRA.
 */
package org.loratransplant.calora;
