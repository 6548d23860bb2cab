/* Native side of the round-trip tests: compiled with the system C compiler, the
 * independent reference for the C ABI the stubs must follow. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

bool id_bool(bool x) { return x; }
int8_t id_byte(int8_t x) { return x; }
uint16_t id_char(uint16_t x) { return x; }
int16_t id_short(int16_t x) { return x; }
int32_t id_int(int32_t x) { return x; }
int64_t id_long(int64_t x) { return x; }
float id_float(float x) { return x; }
double id_double(double x) { return x; }
void *id_ptr(void *x) { return x; }

bool not_bool(bool x) { return !x; }
int32_t add_int(int32_t a, int32_t b) { return a + b; }

/* Every carrier in one call; the result encodes each argument so a swap shows. */
double mix(bool z, int8_t b, uint16_t c, int16_t s, int32_t i, int64_t j, float f, double d,
           void *p) {
    return (z ? 1.0 : 0.0) + b * 10.0 + c * 100.0 + s * 1000.0 + i * 1e4 + (double)j * 1e5 +
           f * 1e6 + d * 1e7 + (p ? 1e9 : 0.0);
}

/* More arguments than registers: 10 integers and 10 doubles. */
double spill(int64_t a0, int64_t a1, int64_t a2, int64_t a3, int64_t a4, int64_t a5, int64_t a6,
             int64_t a7, int64_t a8, int64_t a9, double d0, double d1, double d2, double d3,
             double d4, double d5, double d6, double d7, double d8, double d9) {
    return a0 + 2 * a1 + 3 * a2 + 4 * a3 + 5 * a4 + 6 * a5 + 7 * a6 + 8 * a7 + 9 * a8 + 10 * a9 +
           11 * d0 + 12 * d1 + 13 * d2 + 14 * d3 + 15 * d4 + 16 * d5 + 17 * d6 + 18 * d7 +
           19 * d8 + 20 * d9;
}

static int32_t counter;
void bump(void) { counter++; }
int32_t get_counter(void) { return counter; }

void write_int(int32_t *where, int32_t value) { *where = value; }
size_t byte_len(const char *s) { return strlen(s); }
const char *greeting(void) { return "hello from C"; }

/* Heap access (critical(allow_heap_access=True)) and target layouts. */
void copy_bytes(void *dst, const void *src, int64_t n) { memcpy(dst, src, (size_t)n); }
int32_t *int_ptr(void) { static int32_t x = 1234; return &x; }

/* errno capture (after the JDK's libCaptureCallState.c): set errno, return something. */
#include <errno.h>
#include <stdarg.h>
#include <time.h>
struct SL { long long x; };
struct SLL { long long x, y; };
struct SLLL { long long x, y, z; };
struct SD { double x; };
struct SDD { double x, y; };
struct SDDD { double x, y, z; };
void set_errno_V(int v) { errno = v; }
int set_errno_I(int v) { errno = v; return 42; }
double set_errno_D(int v) { errno = v; return 42.0; }
struct SL set_errno_SL(int v) { errno = v; struct SL s = {42}; return s; }
struct SLL set_errno_SLL(int v) { errno = v; struct SLL s = {42, 43}; return s; }
struct SLLL set_errno_SLLL(int v) { errno = v; struct SLLL s = {42, 43, 44}; return s; }
struct SD set_errno_SD(int v) { errno = v; struct SD s = {42.5}; return s; }
struct SDD set_errno_SDD(int v) { errno = v; struct SDD s = {42.5, 43.5}; return s; }
struct SDDD set_errno_SDDD(int v) { errno = v; struct SDDD s = {42.5, 43.5, 44.5}; return s; }

/* Variadic writeback (after the JDK's libVarArgs.c): types[i] says what the i-th variadic
 * argument is; each value is copied into its 32-byte slot of out. */
struct S_II { int a, b; };
struct S_FFFF { float a, b, c, d; };
void varargs(const int *types, unsigned char *out, int num, ...) {
    va_list ap;
    va_start(ap, num);
    for (int i = 0; i < num; i++) {
        unsigned char *slot = out + 32 * i;
        switch (types[i]) {
        case 0: { int x = va_arg(ap, int); memcpy(slot, &x, sizeof x); break; }
        case 1: { long long x = va_arg(ap, long long); memcpy(slot, &x, sizeof x); break; }
        case 2: { double x = va_arg(ap, double); memcpy(slot, &x, sizeof x); break; }
        case 3: { void *x = va_arg(ap, void *); memcpy(slot, &x, sizeof x); break; }
        case 4: { struct S_II x = va_arg(ap, struct S_II); memcpy(slot, &x, sizeof x); break; }
        case 5: { struct SDD x = va_arg(ap, struct SDD); memcpy(slot, &x, sizeof x); break; }
        case 6: { struct S_FFFF x = va_arg(ap, struct S_FFFF); memcpy(slot, &x, sizeof x); break; }
        case 7: { struct SLLL x = va_arg(ap, struct SLLL); memcpy(slot, &x, sizeof x); break; }
        }
    }
    va_end(ap);
}

/* Blocks for a while: the GIL test. */
void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Unions by value. */
union IF { int32_t i; float f; };
union DL { double d; long long l; };
union BIG { double d[3]; long long l; };
int32_t union_int(union IF u) { return u.i; }
union DL union_echo(union DL u) { return u; }
double union_big(union BIG u, int32_t i) { return u.d[i]; }

/* A struct at hatch-ffm's by-value limit (MAX_BY_VALUE_BYTE_SIZE = 4096 bytes), passed and
 * returned whole: the result is the argument with word i negated and i added to the last. */
struct at_limit { int64_t words[512]; };
struct at_limit at_limit_echo(struct at_limit s, int32_t i) {
    s.words[i] = -s.words[i];
    s.words[511] += i;
    return s;
}

/* Blocks (the GIL released) until the test writes to the pipe ``fd`` reads from: a downcall
 * that is certainly running while another thread does something.  Returns the bytes read. */
int64_t block_on_read(int32_t fd, void *buffer, int64_t size) { return read(fd, buffer, (size_t)size); }

/* Unsigned values (JAVA_INT.unsigned() and friends); gcc is the reference for the ABI. */
uint8_t id_u8(uint8_t x) { return x; }
uint16_t id_u16(uint16_t x) { return x; }
uint32_t id_u32(uint32_t x) { return x; }
uint64_t id_u64(uint64_t x) { return x; }
/* The 32 bits of the register a narrow unsigned argument arrives in: declared narrower by
 * the descriptor, this shows whether the caller zero-extended it (x86_64 SysV asks it to). */
uint32_t raw32(uint32_t x) { return x; }
uint8_t low_byte(uint32_t x) { return (uint8_t)x; }
uint16_t low_half(uint32_t x) { return (uint16_t)x; }
uint64_t mix_unsigned(uint8_t a, uint16_t b, uint32_t c, uint64_t d) {
    return (uint64_t)a + ((uint64_t)b << 8) + ((uint64_t)c << 24) + d;
}

/* Upcalls: C calling Python back through the function pointer an upcall stub is. */
int32_t call_ii(int32_t (*f)(int32_t, int32_t), int32_t a, int32_t b) { return f(a, b); }
double call_dj(double (*f)(double, int64_t), double x, int64_t n) { return f(x, n); }
/* Every carrier C can pass, with values that show a swap, a truncation or a wrong sign. */
double call_mix(double (*f)(bool, int8_t, uint16_t, int16_t, int32_t, int64_t, float, double, void *),
                void *p) {
    return f(true, -5, 65535, -300, -70000, (int64_t)1 << 40, 1.5f, 2.25, p);
}
/* Narrow results: how C sees what the callback returned. */
int32_t call_short(int16_t (*f)(int32_t), int32_t x) { return f(x); }
int32_t call_bool(bool (*f)(int32_t), int32_t x) { return f(x) ? 7 : 3; }
void call_void(void (*f)(int32_t), int32_t x) { f(x); }
void *call_ptr(void *(*f)(void *), void *p) { return f(p); }
/* More arguments than registers: the trampoline passes those on the stack untouched. */
double call_spill(double (*f)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                              int64_t, int64_t, double, double, double, double, double, double, double,
                              double, double, double)) {
    return f(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5);
}
/* A struct result around a callback: in registers (the stub writes it after the call), and
   in memory (the callee writes it, after calling back). */
struct ll { int64_t a, b; };
struct lll { int64_t a, b, c; };
struct ll call_ii_ll(int32_t (*f)(int32_t, int32_t), int32_t a, int32_t b) {
    int32_t first = f(a, b);
    struct ll r = {first, f(b, a)};
    return r;
}
struct lll call_ii_lll(int32_t (*f)(int32_t, int32_t), int32_t a, int32_t b) {
    int32_t first = f(a, b);
    struct lll r = {first, f(b, a), 7};
    return r;
}
/* Many calls in a loop: sum of f(i, 1) for i in [0, n). */
int64_t sum_calls(int32_t (*f)(int32_t, int32_t), int32_t n) {
    int64_t s = 0;
    for (int32_t i = 0; i < n; i++) s += f(i, 1);
    return s;
}
/* The callback called from a C atexit handler: after the interpreter is finalized. */
static int32_t (*at_exit_f)(int32_t, int32_t);
static void at_exit_call(void) {
    int32_t result = at_exit_f(20, 22);
    char line[32];
    int n = snprintf(line, sizeof line, "at exit: %d\n", (int)result);
    if (n > 0) (void)!write(2, line, (size_t)n);
}
void call_ii_at_exit(int32_t (*f)(int32_t, int32_t)) {
    at_exit_f = f;
    atexit(at_exit_call);
}
/* The callback called on a thread Python never saw (the caller waits for it). */
struct ii_call {
    int32_t (*f)(int32_t, int32_t);
    int32_t a, b, result;
};
static void *run_ii(void *p) {
    struct ii_call *c = p;
    c->result = c->f(c->a, c->b);
    return NULL;
}
int32_t call_ii_on_new_thread(int32_t (*f)(int32_t, int32_t), int32_t a, int32_t b) {
    struct ii_call c = {f, a, b, 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_ii, &c) != 0) return -1;
    pthread_join(thread, NULL);
    return c.result;
}

/* Upcalls passing and returning structs and unions by value: 1, 2 and 3 fields of mixed
 * types, HFAs of floats and of doubles, a 24-byte struct (in memory on x86_64, by reference on
 * AArch64), with enough other arguments that some structs go on the stack.  The C side makes
 * the arguments and sums up what it gets back (tests/fixtures/ffm_testpkg/ffm_testpkg/
 * struct_upcalls.py has the same sums). */
struct U1 { int32_t a; };
struct U2 { double d; void *p; };
struct U3 { float f; int32_t i; double d; };
struct UHF { float a, b, c; };
struct UHD { double a, b, c, d; };
struct U24 { int64_t j; double d; void *p; };
union UU { int64_t j; double d; };

double call_struct_args(double (*f)(struct U1, struct U2, struct U3, struct UHF, struct UHD, struct U24),
                        void *p) {
    struct U1 a = {-7};
    struct U2 b = {2.5, p};
    struct U3 c = {1.25f, -3, 4.5};
    struct UHF d = {0.5f, 1.5f, 2.5f};
    struct UHD e = {1.0, 2.0, 3.0, 4.0};
    struct U24 g = {-((int64_t)1 << 40), 6.25, p};
    return f(a, b, c, d, e, g);
}
double call_struct_spill(double (*f)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                     double, double, double, double, double, double, double, double,
                                     struct U2, struct UHF, struct U1, int32_t, struct U24, struct U3),
                         void *p) {
    struct U2 b = {-2.5, p};
    struct UHF d = {3.5f, 4.5f, 5.5f};
    struct U1 a = {99};
    struct U24 g = {123456789012345, -0.125, p};
    struct U3 c = {-1.5f, 77, 8.75};
    return f(1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, b, d, a, -42, g, c);
}
double call_union(double (*f)(union UU, int32_t, union UU)) {
    union UU x, y;
    x.j = 5;
    y.d = 2.5;
    return f(x, 3, y);
}
double ret_u1(struct U1 (*f)(int32_t), int32_t x) { return f(x).a; }
double ret_u2(struct U2 (*f)(double, void *), double x, void *p) {
    struct U2 s = f(x, p);
    return s.d + (s.p == p ? 1000.0 : 0.0);
}
double ret_u3(struct U3 (*f)(float, int32_t, double), float x, int32_t y, double z) {
    struct U3 s = f(x, y, z);
    return s.f + s.i * 2.0 + s.d * 4.0;
}
double ret_uhf(struct UHF (*f)(float), float x) {
    struct UHF s = f(x);
    return s.a + s.b * 2.0 + s.c * 4.0;
}
double ret_uhd(struct UHD (*f)(double), double x) {
    struct UHD s = f(x);
    return s.a + s.b * 2.0 + s.c * 4.0 + s.d * 8.0;
}
double ret_u24(struct U24 (*f)(int64_t, void *), int64_t x, void *p) {
    struct U24 s = f(x, p);
    return (double)s.j + s.d * 2.0 + (s.p == p ? 1000.0 : 0.0);
}
double echo_u3(struct U3 (*f)(struct U3, int32_t), int32_t k) {
    struct U3 s = {1.5f, 10, -2.25};
    struct U3 r = f(s, k);
    return r.f + r.i * 2.0 + r.d * 4.0;
}
/* echo_u3 on a thread Python never saw (the caller waits for it). */
struct u3_call {
    struct U3 (*f)(struct U3, int32_t);
    int32_t k;
    double result;
};
static void *run_u3(void *p) {
    struct u3_call *c = p;
    c->result = echo_u3(c->f, c->k);
    return NULL;
}
double echo_u3_on_new_thread(struct U3 (*f)(struct U3, int32_t), int32_t k) {
    struct u3_call c = {f, k, 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_u3, &c) != 0) return -1;
    pthread_join(thread, NULL);
    return c.result;
}
double echo_u24(struct U24 (*f)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                struct U3, struct U24, struct UHF),
                void *p) {
    struct U3 c = {0.25f, 5, 1.75};
    struct U24 g = {1000, 0.5, p};
    struct UHF d = {1.0f, 2.0f, 3.0f};
    struct U24 r = f(1, 2, 3, 4, 5, 6, 7, 8, c, g, d);
    return (double)r.j + r.d * 2.0 + (r.p == p ? 1000.0 : 0.0);
}
double echo_uhd(struct UHD (*f)(struct UHD, double, double, double, double, double, double, double, double,
                                struct UHF)) {
    struct UHD e = {1.0, 2.0, 3.0, 4.0};
    struct UHF d = {0.5f, 0.25f, 0.125f};
    struct UHD r = f(e, 10, 20, 30, 40, 50, 60, 70, 80, d);
    return r.a + r.b * 2.0 + r.c * 4.0 + r.d * 8.0;
}
/* Unsigned arguments and results of upcalls: the largest values, and a narrow result as C
 * sees it (zero-extended). */
uint64_t call_unsigned(uint64_t (*f)(uint8_t, uint16_t, uint32_t, uint64_t)) {
    return f(255, 65535, 4294967295u, 18446744073709551615u);
}
int64_t call_narrow_unsigned(uint8_t (*f)(uint32_t), uint16_t (*g)(uint32_t), uint32_t x) {
    return (int64_t)f(x) * 100000 + g(x);
}
