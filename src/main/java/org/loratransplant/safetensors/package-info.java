/**
 * Strict reader and writer for the Hugging Face safetensors format, and {@link
 * org.loratransplant.safetensors.Checkpoint} for a model directory's (possibly sharded) weights.
 *
 * <p>Format: 8 bytes little-endian u64 {@code N}, then {@code N} bytes of UTF-8 JSON (the
 * header), then the data section. The header maps each tensor name to {@code dtype}, {@code
 * shape} and {@code data_offsets} (relative to the data section); an optional {@code
 * __metadata__} entry maps strings to strings.
 *
 * <p>Reading validates the whole header before any allocation that depends on it, and accepts
 * only files the reference Rust/Python implementation would also accept (plus a few stricter
 * checks: duplicate keys, unknown fields). Every failure is a {@link
 * org.loratransplant.safetensors.SafeTensorsException} naming the file and, where relevant, the
 * tensor. Writing reproduces the reference library's byte layout so that files round-trip
 * byte-for-byte.
 */
package org.loratransplant.safetensors;
