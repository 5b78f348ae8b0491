/**
 * extract.test.ts again, with small files written by two extraction threads (ExtractOptions.threads)
 * instead of the calling one: the same hostile containers, failures and modes.
 */
process.env.BFC_TEST_EXTRACT_THREADS = "2";
await import("./extract.test.ts");
