package org.loratransplant.transfer;

/**
 * One target module's line of the transfer report.
 *
 * @param similarity the method's similarity (see {@link TransferSettings#threshold}; direct
 *     reuse: the cosine between the two weights), or NaN where none was computed
 * @param subspaceRank the k of the truncated SVDs (0 for direct reuse or when not computed)
 * @param relativeNorm {@code ||dW written|| / ||dW_s||}: 1 for a copy, 0 for a skipped module
 * @param reason why the module was skipped, or how it was transferred
 */
public record ModuleReport(String module, int layer, int sourceLayer, int[] sourceShape,
    int[] targetShape, double similarity, int subspaceRank, boolean transferred, String reason,
    double relativeNorm) {}
