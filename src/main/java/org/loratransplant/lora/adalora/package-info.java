/**
 * AdaLoRA (METHODS.md section 6) as peft 0.21 defines it: SVD-form adapters
 * ({@link org.loratransplant.lora.adalora.AdaLoraAdapter}), PEFT's ADALORA layout
 * ({@link org.loratransplant.lora.adalora.AdaLoraFormat}), the orthogonality regulariser,
 * importance scores and pruning ({@link org.loratransplant.lora.adalora.RankAllocator}), the cubic
 * budget schedule and the training loop that ties them together.
 */
package org.loratransplant.lora.adalora;
