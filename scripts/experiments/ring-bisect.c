// Experiment (issue #4): where a ring's 64-byte round trip loses against limits.c's spin
// floor, by adding ring v2's parts one at a time to a bare two-line bounce. Each variant
// is a batch of N round trips between two pinned processes; all variants run in turn
// between two floor batches (limits.c's loop), B times, and each ratio is to the lower
// of those two floors. Variants (per direction, a 1 MiB ring unless said):
//
//   fixed            the same two lines every message: the header word (tag, length)
//                    and one word of the next line, both polled (two-line-bounce.c's
//                    two-par, with a 64-bit tagged header);
//   adv128           as fixed, but each message at the next 128-byte slot (fresh lines,
//                    as in any ring);
//   adv128 ring1k    adv128 in a ring of 1 KiB (8 slots: the lines come back soon);
//   +copy            the producer copies 64 payload bytes (header line last), the
//                    consumer copies them out;
//   +term            a zero terminator word after each record (ring v2 needs it so that
//                    stale payload is never read as a header; here a third line);
//   +tail            the consumer stores its tail (Release) after each record;
//   +fence           ring v2's wake-up check after every push and pop (SeqCst fence and
//                    a load of the other side's waiting flag);
//   v2               all of the above with ring v2's packing (records 8-aligned, 72
//                    bytes each: the next header shares the previous record's last line);
//   lane8 data64     a design for a ring v3: the header words in a lane of their own (8
//                    per line, so consecutive messages write the same header line) and
//                    the payload alone in the data, 64-byte aligned. A header slot never
//                    holds payload, so no terminator is needed, and the header line is
//                    reused as in `fixed`; only the payload line advances.
//
// Not part of CI; numbers seen are in git history; the conclusions in docs/shm-ring.md.
//
//   gcc -O2 -o /tmp/ring-bisect scripts/experiments/ring-bisect.c
//   /tmp/ring-bisect [N] [B]      (3000 24)
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
  _Alignas(128) _Atomic uint64_t lane[16];
  _Alignas(128) unsigned char data[CAP];
} ring_t;

struct variant {
  const char *name;
  int fixed;       // every message in slot 0
  uint64_t stride; // bytes from one record to the next (128: one per two lines; 72: v2)
  uint64_t ring;   // ring bytes (a multiple of stride), 0 for CAP
  int copy, term, tail, fence;
  int lane; // header words in `lane`, payload alone in the data (stride 64)
};
static const struct variant vs[] = {
    {"fixed", 1, 128, 0, 0, 0, 0, 0, 0},
    {"adv128", 0, 128, 0, 0, 0, 0, 0, 0},
    {"adv128 ring1k", 0, 128, 1024, 0, 0, 0, 0, 0},
    {"adv128+copy", 0, 128, 0, 1, 0, 0, 0, 0},
    {"adv128+copy+term", 0, 128, 0, 1, 1, 0, 0, 0},
    {"adv128+copy+term+tail", 0, 128, 0, 1, 1, 1, 0, 0},
    {"adv128+copy+term+tail+fence", 0, 128, 0, 1, 1, 1, 1, 0},
    {"v2 (72-byte packing, all)", 0, 72, 0, 1, 1, 1, 1, 0},
    {"lane8 data64 copy", 0, 64, 0, 1, 0, 0, 0, 1},
    {"lane8 data64 copy+tail+fence", 0, 64, 0, 1, 0, 1, 1, 1},
    {"lane8 data64 ring4k copy+tail+fence", 0, 64, 4096, 1, 0, 1, 1, 1},
};
enum { K = sizeof vs / sizeof vs[0] };
static const struct variant *V;

static void pin(int c) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(c, &s); sched_setaffinity(0, sizeof s, &s); }
static uint64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static int cmp_u64(const void *a, const void *b) { uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b; return x < y ? -1 : x > y; }
static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

static ring_t *ra, *rb;
static _Atomic int *flag;
static uint64_t *v;
static unsigned char msg[64], buf[64];

static inline _Atomic uint64_t *word(ring_t *r, uint64_t pos) { return (_Atomic uint64_t *)&r->data[pos & (CAP - 1) & ~7ull]; }
static inline uint64_t pos_of(uint64_t i) { return V->fixed ? 0 : (i * V->stride) % (V->ring ? V->ring : CAP); }
// The header word: a position tag and the length, plus the message number so that a
// reused slot (fixed, small rings) never shows an old header as new.
static inline uint64_t header(uint64_t at, uint64_t i) {
  return ((uint64_t)((uint32_t)(at >> 3) | 0x80000000u) << 32) | (i + 1) << 8 | 64;
}

static void push(ring_t *r, uint64_t i) {
  if (V->lane) {
    memcpy(r->data + pos_of(i), msg, 64);
    atomic_store_explicit(&r->lane[i % 8], header(i, i), memory_order_release);
    if (V->fence) { atomic_thread_fence(memory_order_seq_cst); (void)atomic_load_explicit(&r->waiting, memory_order_relaxed); }
    return;
  }
  uint64_t at = pos_of(i);
  unsigned char *d = r->data;
  size_t off = at & (CAP - 1), near = 56 - (off & 63);
  if (V->copy) memcpy(d + off + 8 + near, msg + near, 64 - near);
  else atomic_store_explicit(word(r, at + 64), i, memory_order_relaxed);
  if (V->term) atomic_store_explicit(word(r, pos_of(i + 1)), 0, memory_order_relaxed);
  if (V->copy) memcpy(d + off + 8, msg, near);
  atomic_store_explicit(word(r, at), header(at, i), memory_order_release);
  if (V->fence) { atomic_thread_fence(memory_order_seq_cst); (void)atomic_load_explicit(&r->waiting, memory_order_relaxed); }
}

static void pop(ring_t *r, uint64_t i) {
  if (V->lane) {
    uint64_t want = header(i, i), at = pos_of(i);
    for (unsigned spins = 1; atomic_load_explicit(&r->lane[i % 8], memory_order_acquire) != want; spins++) {
      (void)atomic_load_explicit(word(r, at), memory_order_relaxed);
      if (spins % 64 == 0) __builtin_ia32_pause();
    }
    memcpy(buf, r->data + at, 64);
    if (V->tail) atomic_store_explicit(&r->tail, i + 1, memory_order_release);
    if (V->fence) { atomic_thread_fence(memory_order_seq_cst); (void)atomic_load_explicit(&r->waiting, memory_order_relaxed); }
    return;
  }
  uint64_t at = pos_of(i), want = header(at, i);
  for (unsigned spins = 1; atomic_load_explicit(word(r, at), memory_order_acquire) != want; spins++) {
    (void)atomic_load_explicit(word(r, at + 64), memory_order_relaxed);
    if (spins % 64 == 0) __builtin_ia32_pause();
  }
  if (V->copy) memcpy(buf, r->data + ((at + 8) & (CAP - 1)), 64);
  else (void)atomic_load_explicit(word(r, at + 64), memory_order_relaxed);
  if (V->tail) atomic_store_explicit(&r->tail, at + V->stride, memory_order_release);
  if (V->fence) { atomic_thread_fence(memory_order_seq_cst); (void)atomic_load_explicit(&r->waiting, memory_order_relaxed); }
}

static uint64_t p50(int n) { qsort(v, n, sizeof *v, cmp_u64); return v[n / 2]; }

static uint64_t floor_batch(int n) {
  *flag = 0;
  pid_t p = fork();
  if (p < 0) { perror("fork"); exit(1); }
  if (p == 0) { pin(1); for (int i = 0; i < n; i++) { while (atomic_load(flag) != 2 * i + 1) ; atomic_store(flag, 2 * i + 2); } _exit(0); }
  pin(0);
  for (int i = 0; i < n; i++) { uint64_t t = now_ns(); atomic_store(flag, 2 * i + 1); while (atomic_load(flag) != 2 * i + 2) ; v[i] = now_ns() - t; }
  waitpid(p, 0, 0);
  return p50(n);
}

static uint64_t ring_batch(int n) {
  memset(ra->data, 0, CAP);
  memset(rb->data, 0, CAP);
  memset((void*)ra->lane, 0, sizeof ra->lane);
  memset((void*)rb->lane, 0, sizeof rb->lane);
  int warm = n / 10;
  pid_t p = fork();
  if (p < 0) { perror("fork"); exit(1); }
  if (p == 0) { pin(1); for (int i = 0; i < n + warm; i++) { pop(ra, i); push(rb, i); } _exit(0); }
  pin(0);
  for (int i = 0; i < n + warm; i++) {
    uint64_t t = now_ns();
    push(ra, i);
    pop(rb, i);
    if (i >= warm) v[i - warm] = now_ns() - t;
  }
  waitpid(p, 0, 0);
  return p50(n);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 3000, b = argc > 2 ? atoi(argv[2]) : 24;
  if (n < 10 || b < 1 || (uint64_t)(n + n / 10 + 1) * 128 > CAP) { fprintf(stderr, "usage: ring-bisect [N 10..7000] [B>=1]\n"); return 2; }
  ra = mmap(0, sizeof(ring_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  rb = mmap(0, sizeof(ring_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  flag = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  v = malloc(n * sizeof *v);
  double *ratio = malloc(sizeof *ratio * K * b);
  for (int r = 0; r < b; r++) {
    uint64_t f1 = floor_batch(n), x[K];
    for (int k = 0; k < K; k++) { V = &vs[k]; x[k] = ring_batch(n); }
    uint64_t f2 = floor_batch(n), f = f1 < f2 ? f1 : f2;
    printf("floor %4lu/%4lu ns:", f1, f2);
    for (int k = 0; k < K; k++) { ratio[k * b + r] = (double)x[k] / f; printf(" %4lu", x[k]); }
    printf("\n");
    fflush(stdout);
  }
  printf("median ratio to the lower floor around each batch, of %d batches:\n", b);
  for (int k = 0; k < K; k++) {
    qsort(ratio + k * b, b, sizeof *ratio, cmp_d);
    int under = 0;
    for (int r = 0; r < b; r++) under += ratio[k * b + r] <= 1.5;
    printf("  %-36s %.2fx (%d of %d <= 1.5x)\n", vs[k].name, ratio[k * b + b / 2], under, b);
  }
  return 0;
}
