// Package bench holds difyload's load-generator benchmark: bench/run.sh (which drives
// bench.py, and fleet.py for the idle and master-scale steps), the reference "floor" client
// (bench/floor), the light server of the top steps (bench/leanmock: difymock's simple
// chatflow stream with little user-space work), the Python benchmark users
// (locustfile_bench.py) and a smoke test that runs the benchmark in a tiny configuration.
// See README.md in this directory for the method, the results and the commands.
package bench
