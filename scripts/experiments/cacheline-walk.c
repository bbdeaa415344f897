// Experiment (issue #4): what two cache lines per message cost against one, with no
// ring protocol at all. Two pinned processes bounce a counter through one or two lines
// per hop (`w`: with two, the second is written first and read after the first, both
// polled, as ring v2 does for a 64-byte message); the lines used advance by one slot
// per round over `nl` slots (nl 1: the same line(s) every time, like the spin floor;
// nl 16384: a walk over 1-2 MiB, like a ring). Only ratios within one run mean anything
// on the shared VM. Numbers seen are in git history; the conclusions in docs/shm-ring.md.
//
//   gcc -O2 -o /tmp/cacheline-walk scripts/experiments/cacheline-walk.c
//   /tmp/cacheline-walk [ROUND_TRIPS] [REPEATS]     (30000 3)
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pin(int c) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(c, &s); sched_setaffinity(0, sizeof s, &s); }
static uint64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static int cmp(const void *a, const void *b) { uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b; return x < y ? -1 : x > y; }

static size_t NL;
static int W;
static inline _Atomic uint32_t *first(char *base, uint32_t i) { return (_Atomic uint32_t *)(base + (i % NL) * 64 * W); }
static inline _Atomic uint32_t *second(char *base, uint32_t i) { return (_Atomic uint32_t *)(base + (i % NL) * 64 * W + 64); }

static uint64_t run(int n) {
  size_t sz = NL * 128 + 4096;
  char *a = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  char *b = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint64_t *v = malloc(n * sizeof *v);
  pid_t p = fork();
  if (p == 0) {
    pin(1);
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
      while (atomic_load_explicit(first(a, i), memory_order_acquire) != i + 1)
        if (W == 2) (void)atomic_load_explicit(second(a, i), memory_order_relaxed);
      if (W == 2) (void)atomic_load_explicit(second(a, i), memory_order_relaxed);
      if (W == 2) atomic_store_explicit(second(b, i), i + 1, memory_order_relaxed);
      atomic_store_explicit(first(b, i), i + 1, memory_order_release);
    }
    _exit(0);
  }
  pin(0);
  for (uint32_t i = 0; i < (uint32_t)n; i++) {
    uint64_t t = now_ns();
    if (W == 2) atomic_store_explicit(second(a, i), i + 1, memory_order_relaxed);
    atomic_store_explicit(first(a, i), i + 1, memory_order_release);
    while (atomic_load_explicit(first(b, i), memory_order_acquire) != i + 1)
      if (W == 2) (void)atomic_load_explicit(second(b, i), memory_order_relaxed);
    if (W == 2) (void)atomic_load_explicit(second(b, i), memory_order_relaxed);
    v[i] = now_ns() - t;
  }
  waitpid(p, 0, 0);
  qsort(v, n, sizeof *v, cmp);
  uint64_t r = v[n / 2];
  free(v);
  munmap(a, sz);
  munmap(b, sz);
  return r;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 30000;
  int reps = argc > 2 ? atoi(argv[2]) : 3;
  if (n < 10) return 2;
  static const size_t nls[] = {1, 16, 1024, 16384};
  for (int r = 0; r < reps; r++) {
    for (W = 1; W <= 2; W++)
      for (size_t k = 0; k < 4; k++) {
        NL = nls[k];
        printf("w%d nl %5zu: %4lu ns  ", W, NL, run(n));
      }
    printf("\n");
    fflush(stdout);
  }
  return 0;
}
