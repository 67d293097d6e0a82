/**
 * Reporting for the {@code jobs/lt compare} job, in plain Java (no Spark): per-run result rows,
 * per-item scores for paired tests ({@link org.loratransplant.report.PairedTests}), means over
 * seeds ({@link org.loratransplant.report.MeanOverSeeds}), a Markdown/JSON comparison
 * ({@link org.loratransplant.report.ComparisonReport}) and a headless bar chart
 * ({@link org.loratransplant.report.ComparisonPlot}).
 */
package org.loratransplant.report;
