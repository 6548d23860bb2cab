/* C struct layouts whose sizeof/offsetof the layout tests compare with byte_size/byte_offset. */
#include <stddef.h>
#include <stdint.h>

struct point { int32_t x; int32_t y; };
struct mixed { char c; double d; int16_t s; };
struct nested { struct point p; int64_t id; float f[3]; };
union number { int32_t i; double d; char bytes[12]; };
struct with_union { uint8_t tag; union number value; void *next; };

#define EXPORT(name, expr) size_t name(void) { return (expr); }
EXPORT(sizeof_point, sizeof(struct point))
EXPORT(offsetof_point_y, offsetof(struct point, y))
EXPORT(sizeof_mixed, sizeof(struct mixed))
EXPORT(offsetof_mixed_d, offsetof(struct mixed, d))
EXPORT(offsetof_mixed_s, offsetof(struct mixed, s))
EXPORT(sizeof_nested, sizeof(struct nested))
EXPORT(offsetof_nested_id, offsetof(struct nested, id))
EXPORT(offsetof_nested_f2, offsetof(struct nested, f[2]))
EXPORT(sizeof_number, sizeof(union number))
EXPORT(alignof_number, _Alignof(union number))
EXPORT(sizeof_with_union, sizeof(struct with_union))
EXPORT(offsetof_with_union_value, offsetof(struct with_union, value))
EXPORT(offsetof_with_union_next, offsetof(struct with_union, next))

/* Fills a struct mixed so the test can read it back through var handles. */
void fill_mixed(struct mixed *m) { m->c = 'Q'; m->d = 2.5; m->s = -7; }
