/* Counting allocator for the memory figures: malloc/calloc/realloc/free
 * forward to glibc's own entry points and, only while counting is on, add
 * calls and usable bytes to atomic counters. Interposing in the bench
 * executable catches every allocation of the library, jansson and OpenSSL
 * without touching their code. */
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "bench.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static atomic_int counting;
static atomic_uint_fast64_t n_calls, n_bytes;
static atomic_int_fast64_t n_live;

void
bench_alloc_enable(int on)
{
	atomic_store(&counting, on);
}

void
bench_alloc_get(uint64_t *calls, uint64_t *bytes, int64_t *live)
{
	*calls = atomic_load(&n_calls);
	*bytes = atomic_load(&n_bytes);
	*live = atomic_load(&n_live);
}

#ifndef STK_BENCH_NO_ALLOC_HOOK
static void
count_in(void *p)
{
	size_t n;

	if (p == NULL || !atomic_load_explicit(&counting, memory_order_relaxed))
		return;
	n = malloc_usable_size(p);
	atomic_fetch_add_explicit(&n_calls, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_bytes, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_live, (int_fast64_t)n, memory_order_relaxed);
}

static void
count_out(void *p)
{
	if (p == NULL || !atomic_load_explicit(&counting, memory_order_relaxed))
		return;
	atomic_fetch_sub_explicit(&n_live, (int_fast64_t)malloc_usable_size(p),
	    memory_order_relaxed);
}

void *
malloc(size_t n)
{
	void *p = __libc_malloc(n);

	count_in(p);
	return p;
}

void *
calloc(size_t a, size_t b)
{
	void *p = __libc_calloc(a, b);

	count_in(p);
	return p;
}

void *
realloc(void *old, size_t n)
{
	void *p;

	count_out(old);
	p = __libc_realloc(old, n);
	if (p == NULL && old != NULL && n != 0)
		count_in(old); /* failed: the old block is still ours */
	count_in(p);
	return p;
}

void
free(void *p)
{
	count_out(p);
	__libc_free(p);
}
#endif /* STK_BENCH_NO_ALLOC_HOOK: sanitizers own malloc */
