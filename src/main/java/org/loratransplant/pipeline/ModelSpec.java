package org.loratransplant.pipeline;

import java.io.Serializable;

/**
 * What an executor needs to load a model: plain paths, so it serialises into every task for free.
 * The model itself is loaded lazily, once per executor JVM, by {@link ExecutorModels}.
 *
 * @param adapterDir PEFT adapter to load beside the base, or null
 */
public record ModelSpec(String modelDir, String adapterDir, String device)
    implements Serializable {}
