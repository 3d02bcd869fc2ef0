/**
 * Test-only analysis components that let the security index of Elastic's integ-test distribution exist.
 *
 * <p>The {@code integ-test-zip} distribution ships without the analysis-common module, yet the
 * {@code .security} index settings use tokenizer {@code uax_url_email} and token filters
 * {@code pattern_capture} and {@code unique}. Without them the security index cannot be created, so
 * native users, roles and API keys fail. Each class here is a stable-plugin named component wrapping the
 * Lucene implementation (or, for {@code unique}, a few lines) with the settings the security index uses.
 *
 * <p>Never ship this to a real cluster: real distributions have analysis-common, and these types would clash.
 * Every factory must also accept empty settings: Elasticsearch builds each type once without any.
 */
package otelopenreplay.stack.analysis;
