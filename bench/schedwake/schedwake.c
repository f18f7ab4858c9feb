// schedwake measures how soon a sleeping thread runs after data reaches it, while another
// thread of its process keeps the core busy and, optionally, a CPU hog shares that core.
// It answers one question for sse's watch: would a thread outside Go's scheduler (a C thread
// in epoll_wait) see a first token's segment before the next one merges into it, when the
// worker is off the CPU? bench/README.md, "A worker kept off the CPU", has the numbers.
//
//	schedwake [-c CPU] [-n N] [-s SLICE] BUSY   BUSY: percent of each millisecond the main
//	                                            thread spins (0-100)
//
// A child pinned to CPU (-c, default 1) writes its clock every 5 ms (the fast shape's token
// gap) into a socket, N times (-n, default 3000); the watcher thread blocks in read and
// records how late it woke; -s asks the watcher's EEVDF slice in µs (0: the default). It
// prints one JSON line. The caller runs the hog (bench.py: the hog steps' busy loop), in this
// scheduling group or another: with autogroup, each session (setsid) is a group of its own. Linux only.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { max_samples = 100000, gap_us = 5000 };

// sched_attr as sched_setattr(2) takes it; sched_runtime is the requested slice of a
// SCHED_OTHER task since Linux 6.12 (EEVDF).
struct attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

struct watcher {
	int fd, samples, n;
	unsigned slice_us;
	int64_t lat[max_samples];
};

static int64_t now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void *watch(void *arg) {
	struct watcher *w = arg;
	if (w->slice_us) {
		struct attr a = {.size = sizeof a, .runtime = (uint64_t)w->slice_us * 1000};
		if (syscall(SYS_sched_setattr, 0, &a, 0) != 0)
			perror("schedwake: sched_setattr");
	}
	for (w->n = 0; w->n < w->samples; w->n++) {
		int64_t sent;
		if (read(w->fd, &sent, sizeof sent) != sizeof sent)
			break;
		w->lat[w->n] = now_ns() - sent;
	}
	return NULL;
}

static int cmp(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void sender(int fd, int cpu, int samples) {
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof s, &s) != 0)
		perror("schedwake: sender's CPU");
	for (int i = 0; i < samples + 10; i++) {
		usleep(gap_us);
		int64_t t = now_ns();
		if (write(fd, &t, sizeof t) != sizeof t)
			break;
	}
	_exit(0);
}

static int usage(void) {
	fprintf(stderr, "usage: schedwake [-c CPU] [-n SAMPLES] [-s SLICE_US] BUSY%%\n");
	return 2;
}

int main(int argc, char **argv) {
	static struct watcher w;
	int cpu = 1, opt;
	w.samples = 3000;
	while ((opt = getopt(argc, argv, "c:n:s:")) != -1) {
		switch (opt) {
		case 'c':
			cpu = atoi(optarg);
			break;
		case 'n':
			w.samples = atoi(optarg);
			break;
		case 's':
			w.slice_us = (unsigned)atoi(optarg);
			break;
		default:
			return usage();
		}
	}
	if (optind != argc - 1 || w.samples < 1 || w.samples > max_samples || cpu < 0)
		return usage();
	int busy = atoi(argv[optind]);
	if (busy < 0 || busy > 100)
		return usage();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("schedwake: socketpair");
		return 1;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("schedwake: fork");
		return 1;
	}
	if (child == 0)
		sender(sv[1], cpu, w.samples);
	w.fd = sv[0];
	pthread_t t;
	if (pthread_create(&t, NULL, watch, &w) != 0) {
		fprintf(stderr, "schedwake: pthread_create failed\n");
		return 1;
	}
	// The main thread: busy for BUSY % of every millisecond, asleep for the rest, until the
	// watcher has its samples.
	int64_t end = now_ns() + (int64_t)(w.samples + 5) * gap_us * 1000;
	while (now_ns() < end) {
		int64_t t0 = now_ns();
		while (now_ns() - t0 < busy * 10000LL)
			;
		struct timespec idle = {0, (100 - busy) * 10000L};
		if (busy < 100)
			nanosleep(&idle, NULL);
	}
	pthread_join(t, NULL);
	waitpid(child, NULL, 0);
	if (w.n == 0)
		return 1;
	qsort(w.lat, (size_t)w.n, sizeof w.lat[0], cmp);
	printf("{\"busy\": %d, \"slice_us\": %u, \"samples\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
	       "\"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
	       busy, w.slice_us, w.n, w.lat[w.n / 2] / 1e6, w.lat[w.n * 9 / 10] / 1e6, w.lat[w.n * 99 / 100] / 1e6,
	       w.lat[w.n - 1] / 1e6);
	return 0;
}
