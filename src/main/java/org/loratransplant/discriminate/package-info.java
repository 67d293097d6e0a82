/**
 * TransLoRA's discriminator (arXiv 2405.17258): a LoRA on the source base model, fine-tuned in
 * language-model form to answer "real" or "synthetic" for a rendered (query, answer) row, that
 * filters a synthetic pool down to the rows it believes real before the target's LoRA is
 * trained. {@link org.loratransplant.discriminate.Discriminator} fits, scores, saves and loads
 * it; {@link org.loratransplant.discriminate.Filter} keeps rows by score;
 * {@link org.loratransplant.discriminate.SyntheticRows} makes negatives with a base model.
 */
package org.loratransplant.discriminate;
