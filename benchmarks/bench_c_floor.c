/* The native work of bench_abi.py's calls without any binding: each call in a loop compiled
 * with cc -O2, the minimum ns per call over repeats (the inputs are volatile, so nothing is
 * hoisted out of the loop).  Prints "name ns" lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long number = argc > 1 ? atol(argv[1]) : 2000000;
    int repeat = argc > 2 ? atoi(argv[2]) : 7;
    volatile int a = 17, b = 5, i42 = 42, base = 10;
    volatile double d = 2.5;
    const char *volatile text = "12345";
    char buffer[64];
    long sink = 0;
    double best[3] = {1e18, 1e18, 1e18};
    for (int r = 0; r < repeat; r++) {
        double t0 = now_ns();
        for (long k = 0; k < number; k++) { div_t q = div(a, b); sink += q.quot + q.rem; }
        double t1 = now_ns();
        for (long k = 0; k < number; k++) sink += snprintf(buffer, 64, "%d and %.2f", i42, d);
        double t2 = now_ns();
        for (long k = 0; k < number; k++) { errno = 0; sink += strtol(text, NULL, base) + errno; }
        double t3 = now_ns();
        double spent[3] = {t1 - t0, t2 - t1, t3 - t2};
        for (int i = 0; i < 3; i++)
            if (spent[i] / number < best[i]) best[i] = spent[i] / number;
    }
    printf("div %.1f\nsnprintf %.1f\nstrtol %.1f\n", best[0], best[1], best[2]);
    return sink == 42;  /* uses sink; never true */
}
