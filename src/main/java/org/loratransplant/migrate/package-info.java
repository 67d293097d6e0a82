/**
 * Layer-wise LoRA migration (METHODS.md section 5): {@link
 * org.loratransplant.migrate.LayerMigration} distils a LoRA on layer L into one on L-1 (and
 * chains of such steps); {@link org.loratransplant.migrate.MigrationJob} is {@code jobs/lt
 * migrate-layer} with its per-step report.
 */
package org.loratransplant.migrate;
