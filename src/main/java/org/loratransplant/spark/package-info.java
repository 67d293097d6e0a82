/**
 * Spark plumbing shared by every job: how sessions are made ({@link
 * org.loratransplant.spark.SparkSessions}) and how they reach S3-compatible storage.
 */
package org.loratransplant.spark;
