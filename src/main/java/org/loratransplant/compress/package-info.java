/**
 * Compressed copies of a base model (METHODS.md section 4 and QLoRA in section 6): NF4 with
 * double-quantised constants ({@link org.loratransplant.compress.Nf4}), int8 per output channel
 * ({@link org.loratransplant.compress.Int8}) and magnitude or structured pruning
 * ({@link org.loratransplant.compress.Pruning}). {@link org.loratransplant.compress.Compressor}
 * writes a normal Hugging Face model directory holding the dequantised weights, so every loader
 * (ours, transformers) reads it unchanged, plus the quantised payload and its exact errors.
 */
package org.loratransplant.compress;
