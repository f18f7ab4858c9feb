// Package workload reads and checks a difyload workload: the Dify apps under test, the
// knowledge bases, the Locust user classes that drive them and optional SLOs.
//
// A workload is a TOML or JSON file (chosen by extension). The Locust master's
// locustfile.py reads it with Python's tomllib/json, checks it with the same rules as this
// package, resolves the keys from its environment and options, inlines the query datasets
// and sends the result to every worker as a custom message (MessageType). The Go worker
// decodes that message with FromMessage; `difyload run --workload FILE` reads the file with
// Load. With no file, Default is the seed's three scenarios.
//
// Keys are never in the file: an app names the environment variable (key_env) or the
// master option (key_option) that holds its key. Only the master's message carries the
// resolved key, and no error of this package ever contains one.
//
// Every error names the file, the place (a key path such as apps[2].type) and the fix.
// Unknown fields are errors, so a typo never silently changes a test.
package workload
