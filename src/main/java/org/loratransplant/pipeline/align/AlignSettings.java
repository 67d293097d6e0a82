package org.loratransplant.pipeline.align;

import java.io.Serializable;
import org.loratransplant.pipeline.select.SelectSettings;

/**
 * What the align stage depends on: both tokenizers, the answer template the target is prompted
 * with, and the selection applied again on the target side when the tokenizers differ.
 */
public record AlignSettings(String sourceModel, String targetModel, String answerTemplate,
    SelectSettings select) implements Serializable {}
