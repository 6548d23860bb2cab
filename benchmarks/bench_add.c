/* The native side of benchmarks/bench_calls.py. */
int add(int a, int b) { return a + b; }
