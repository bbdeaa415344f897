// Experiment (issues #4 and #7): the least a 64-byte message costs to bounce between two
// pinned processes through shared memory, with no ring protocol at all, against
// limits.c's shm-spin floor measured in turn with it. A 64-byte payload and any signal
// that it has arrived need two cache lines, where the floor bounces one word. Variants,
// each a batch of N round trips, the four in turn, B times, so that every ratio compares
// batches a few milliseconds apart (the VM's spin floor changes regime within seconds):
//
//   floor      limits.c's loop: one word, both ways, seq_cst store, no pause;
//   one-line   a line per direction, one word written (Release) and polled (Acquire);
//   two-par    two lines per direction: the second written first, then the first;
//              the receiver polls both, so that they travel in parallel;
//   two-ser    as two-par, but the receiver polls the first and then reads the second.
//
// No ring, no copy, no validation, no wake-up fence: any transport that moves 64 bytes
// through shared memory costs at least two-par. Not part of CI; numbers in git history;
// the conclusions in docs/shm-ring.md.
//
//   gcc -O2 -o /tmp/two-line-bounce scripts/experiments/two-line-bounce.c
//   /tmp/two-line-bounce [N] [B]      (3000 30)
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

enum { FLOOR, ONE_LINE, TWO_PAR, TWO_SER, VARIANTS };
static const char *names[VARIANTS] = {"floor", "one-line", "two-par", "two-ser"};

static void pin(int c) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(c, &s); sched_setaffinity(0, sizeof s, &s); }
static uint64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static int cmp_u64(const void *a, const void *b) { uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b; return x < y ? -1 : x > y; }
static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

static char *mem;   // two 4 KiB halves: [0] carries cpu0 -> cpu1, [1] cpu1 -> cpu0
static uint64_t *v;
static _Atomic uint32_t *word(int dir, int line) { return (_Atomic uint32_t *)(mem + dir * 4096 + line * 64); }

static void send(int var, int dir, uint32_t x) {
  if (var >= TWO_PAR) atomic_store_explicit(word(dir, 1), x, memory_order_relaxed);
  atomic_store_explicit(word(dir, 0), x, memory_order_release);
}
static void recv(int var, int dir, uint32_t x) {
  while (atomic_load_explicit(word(dir, 0), memory_order_acquire) != x)
    if (var == TWO_PAR) (void)atomic_load_explicit(word(dir, 1), memory_order_relaxed);
  if (var >= TWO_PAR && atomic_load_explicit(word(dir, 1), memory_order_relaxed) != x) abort();
}

static void side(int var, int me, int n) {
  _Atomic int *f = (_Atomic int *)word(0, 0);
  for (int i = 0; i < n; i++) {
    uint64_t t = me == 0 ? now_ns() : 0;
    if (var == FLOOR) {
      if (me == 0) { atomic_store(f, 2 * i + 1); while (atomic_load(f) != 2 * i + 2) ; }
      else { while (atomic_load(f) != 2 * i + 1) ; atomic_store(f, 2 * i + 2); }
    } else if (me == 0) {
      send(var, 0, i + 1); recv(var, 1, i + 1);
    } else {
      recv(var, 0, i + 1); send(var, 1, i + 1);
    }
    if (me == 0) v[i] = now_ns() - t;
  }
}

static uint64_t batch(int var, int n) {
  memset(mem, 0, 8192);
  pid_t p = fork();
  if (p < 0) { perror("fork"); exit(1); }
  if (p == 0) { pin(1); side(var, 1, n); _exit(0); }
  pin(0);
  side(var, 0, n);
  waitpid(p, 0, 0);
  qsort(v, n, sizeof *v, cmp_u64);
  return v[n / 2];
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 3000;
  int b = argc > 2 ? atoi(argv[2]) : 30;
  if (n < 10 || b < 1) { fprintf(stderr, "usage: two-line-bounce [N>=10] [B>=1]\n"); return 2; }
  mem = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  v = malloc(n * sizeof *v);
  double *ratio = malloc((size_t)b * VARIANTS * sizeof *ratio);
  for (int r = 0; r < b; r++) {
    uint64_t x[VARIANTS];
    for (int k = 0; k < VARIANTS; k++) x[k] = batch(k, n);
    uint64_t f2 = batch(FLOOR, n), f = x[FLOOR] < f2 ? x[FLOOR] : f2;
    printf("floor %4lu/%4lu ns", x[FLOOR], f2);
    for (int k = 1; k < VARIANTS; k++) {
      ratio[k * b + r] = (double)x[k] / f;
      printf("  %s %4lu (%.2fx)", names[k], x[k], ratio[k * b + r]);
    }
    printf("\n");
    fflush(stdout);
  }
  printf("median of %d ratios to the lower floor around each batch:", b);
  for (int k = 1; k < VARIANTS; k++) {
    qsort(ratio + k * b, b, sizeof *ratio, cmp_d);
    int under = 0;
    for (int r = 0; r < b; r++) under += ratio[k * b + r] <= 1.5;
    printf("  %s %.2fx (%d of %d <= 1.5x)", names[k], ratio[k * b + b / 2], under, b);
  }
  printf("\n");
  return 0;
}
