/**
 * Cross-tokenizer transfer of per-token scores (METHODS.md section 1, step 5):
 * {@link org.loratransplant.align.TokenAlignment} walks the decoded tokens of the same text under
 * two tokenizers and carries the source scores (a 0/1 mask or the excess) onto target tokens.
 */
package org.loratransplant.align;
