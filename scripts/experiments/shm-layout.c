// Experiment (issue #4): round trip of a small message between two pinned processes
// over two rings laid out like src/shm/ring.rs v2 (a tagged 64-bit header word polled
// in the data, a zero terminator word written after each record before the header is
// published with Release, tail on its own line, the SeqCst fence + waiting-flag load of
// `wake` after every push and pop), in several layout variants, each between two
// measurements of the spin floor (one 4-byte word bounced, Release store, pause per
// poll, like the crate's floor). Only ratios within one run mean anything on the shared
// VM: its spin floor has regimes (~80, 120-150 and 400-460 ns) that change within
// seconds. Not part of CI; the numbers seen are in git history; the conclusions in docs/shm-ring.md.
//
//   gcc -O2 -o /tmp/shm-layout scripts/experiments/shm-layout.c
//   /tmp/shm-layout [ROUND_TRIPS] [MESSAGE_BYTES] [REPEATS]     (20000 64 3)
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAP (1 << 20)
typedef struct {
  _Alignas(128) _Atomic uint64_t tail;
  _Alignas(128) _Atomic uint32_t waiting;
  _Alignas(128) unsigned char data[CAP];
} ring_t;

struct variant {
  const char *name;
  int align;    // records start at multiples of this (8: ring v2)
  int pollnext; // the spinning consumer also loads the line after the header word
  int pre;      // 0 none; 1 producer prefetchw of the record's lines at the start of push;
                // 2 producer, once per wait, a locked add of 0 to the lines of its next
                //   record beyond the two the consumer polls (free space it owns);
                // 3 as 2 with prefetchw instead of the locked add
  int nocopy;   // diagnostic: the consumer reads one payload byte instead of copying
  int nofar;    // diagnostic: the producer skips the payload beyond the header's line
};
static const struct variant *V;
static size_t LEN;

static void pin(int c) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(c, &s); sched_setaffinity(0, sizeof s, &s); }
static uint64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static inline _Atomic uint64_t *word(ring_t *r, uint64_t pos) { return (_Atomic uint64_t *)&r->data[pos & (CAP - 1) & ~7ull]; }
static inline uint64_t recsize(size_t len) {
  uint64_t s = 8 + ((len + 7) & ~7ull);
  return (s + V->align - 1) & ~(uint64_t)(V->align - 1);
}
static inline uint32_t tag(uint64_t pos) { return (uint32_t)(pos >> 3) | 0x80000000u; }

typedef struct { ring_t *r; uint64_t head; } prod_t;
typedef struct { ring_t *r; uint64_t tail; } cons_t;

// Records never wrap in this experiment: CAP is a multiple of every record size used.
static inline void push(prod_t *p, const unsigned char *msg, size_t len) {
  uint64_t at = p->head, rec = recsize(len), next = at + rec;
  unsigned char *d = p->r->data;
  size_t off = at & (CAP - 1);
  size_t near = 64 - 8 - (off & 63);
  if (near > len) near = len;
  if (V->pre == 1)
    for (uint64_t l = at & ~63ull; l < next + 8; l += 64) __builtin_prefetch(d + (l & (CAP - 1)), 1, 3);
  if (!V->nofar) memcpy(d + off + 8 + near, msg + near, len - near);
  atomic_store_explicit(word(p->r, next), 0, memory_order_relaxed);
  memcpy(d + off + 8, msg, near);
  atomic_store_explicit(word(p->r, at), ((uint64_t)tag(at) << 32) | len, memory_order_release);
  p->head = next;
  atomic_thread_fence(memory_order_seq_cst);
  (void)atomic_load_explicit(&p->r->waiting, memory_order_relaxed);
}

static inline void pretouch(prod_t *p) {
  uint64_t h = p->head;
  unsigned char *d = p->r->data;
  for (uint64_t l = (h & ~63ull) + 128; l < h + recsize(LEN) + 8; l += 64) {
    unsigned char *q = d + (l & (CAP - 1));
    if (V->pre == 2) atomic_fetch_add_explicit((_Atomic uint64_t *)(q + 56), 0, memory_order_relaxed);
    else if (V->pre == 3) __builtin_prefetch(q, 1, 3);
  }
}

static inline size_t pop(cons_t *c, unsigned char *out, prod_t *other) {
  for (uint32_t spins = 0;; spins++) {
    uint64_t w = atomic_load_explicit(word(c->r, c->tail), memory_order_acquire);
    if (w) {
      size_t len = (uint32_t)w;
      if ((w >> 32) != tag(c->tail) || len > LEN) { fprintf(stderr, "bad header %lx at %lu\n", w, c->tail); exit(1); }
      unsigned char *d = c->r->data;
      size_t off = (c->tail + 8) & (CAP - 1);
      if (!V->nocopy) memcpy(out, d + off, len); else out[0] = d[off];
      c->tail += recsize(len);
      atomic_store_explicit(&c->r->tail, c->tail, memory_order_release);
      atomic_thread_fence(memory_order_seq_cst);
      (void)atomic_load_explicit(&c->r->waiting, memory_order_relaxed);
      return len;
    }
    if (V->pollnext) (void)atomic_load_explicit(word(c->r, c->tail + 64), memory_order_relaxed);
    if (spins == 0 && (V->pre == 2 || V->pre == 3)) pretouch(other);
    if ((spins & 63) == 63) __builtin_ia32_pause();
  }
}

static int cmp(const void *a, const void *b) { uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b; return x < y ? -1 : x > y; }

static uint64_t floor_spin(int n) {
  _Atomic uint32_t *flag = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint64_t *v = malloc(n * sizeof *v);
  pid_t p = fork();
  if (p == 0) {
    pin(1);
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
      while (atomic_load_explicit(flag, memory_order_acquire) != 2 * i + 1) __builtin_ia32_pause();
      atomic_store_explicit(flag, 2 * i + 2, memory_order_release);
    }
    _exit(0);
  }
  pin(0);
  for (uint32_t i = 0; i < (uint32_t)n; i++) {
    uint64_t t = now_ns();
    atomic_store_explicit(flag, 2 * i + 1, memory_order_release);
    while (atomic_load_explicit(flag, memory_order_acquire) != 2 * i + 2) __builtin_ia32_pause();
    v[i] = now_ns() - t;
  }
  waitpid(p, 0, 0);
  qsort(v, n, sizeof *v, cmp);
  uint64_t r = v[n / 2];
  free(v);
  munmap((void *)flag, 4096);
  return r;
}

static uint64_t ring_rtt(int n) {
  ring_t *a = mmap(0, sizeof(ring_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ring_t *b = mmap(0, sizeof(ring_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint64_t *v = malloc(n * sizeof *v);
  unsigned char msg[4096], buf[4096];
  memset(msg, 0xa5, sizeof msg);
  int warm = n / 10;
  pid_t p = fork();
  if (p == 0) {
    pin(1);
    cons_t ca = {a, 0};
    prod_t pb = {b, 0};
    for (int i = 0; i < n + warm; i++) { size_t l = pop(&ca, buf, &pb); push(&pb, buf, l); }
    _exit(0);
  }
  pin(0);
  prod_t pa = {a, 0};
  cons_t cb = {b, 0};
  for (int i = 0; i < n + warm; i++) {
    uint64_t t = now_ns();
    push(&pa, msg, LEN);
    pop(&cb, buf, &pa);
    if (i >= warm) v[i - warm] = now_ns() - t;
  }
  waitpid(p, 0, 0);
  qsort(v, n, sizeof *v, cmp);
  uint64_t r = v[n / 2];
  free(v);
  munmap(a, sizeof *a);
  munmap(b, sizeof *b);
  return r;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  LEN = argc > 2 ? (size_t)atoi(argv[2]) : 64;
  int reps = argc > 3 ? atoi(argv[3]) : 3;
  if (n < 10 || LEN == 0 || LEN > 4000) { fprintf(stderr, "usage: shm-layout [N>=10] [1..4000] [REPEATS]\n"); return 2; }
  static const struct variant vs[] = {
    {"v2: 8-aligned, poll next line", 8, 1, 0, 0, 0},
    {"8-aligned, header only", 8, 0, 0, 0, 0},
    {"64-aligned, poll next line", 64, 1, 0, 0, 0},
    {"64-aligned, header only", 64, 0, 0, 0, 0},
    {"128-aligned, poll next line", 128, 1, 0, 0, 0},
    {"64-aligned, poll next, pre-touch (lock add)", 64, 1, 2, 0, 0},
    {"64-aligned, poll next, pre-touch (prefetchw)", 64, 1, 3, 0, 0},
    {"v2 + prefetchw of the record in push", 8, 1, 1, 0, 0},
    {"diag: v2, header only, no far payload, no copy", 8, 0, 0, 1, 1},
  };
  for (int r = 0; r < reps; r++)
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
      V = &vs[k];
      uint64_t f1 = floor_spin(n), x = ring_rtt(n), f2 = floor_spin(n);
      printf("%-48s p50 %5lu ns  floor %4lu/%4lu ns  ratio %.2f\n", V->name, x, f1, f2,
             (double)x / (f1 < f2 ? f1 : f2));
      fflush(stdout);
    }
  return 0;
}
