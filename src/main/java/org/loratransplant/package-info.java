/**
 * lora-transplant: moves the knowledge in a LoRA adapter from one language model to another.
 *
 * <p>One package per concept: {@code safetensors} (checkpoint files), {@code model} (the Llama
 * family runtime on DJL), {@code tokenizer}, {@code lora}, {@code train}, {@code task},
 * {@code eval}, {@code pipeline} (one sub-package per stage), {@code table} (every Parquet
 * table's schema) and {@code cli} (the {@code jobs/lt} commands).
 */
package org.loratransplant;
