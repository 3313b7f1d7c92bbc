#define _GNU_SOURCE
#include "csandbox.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

static int crash_fd = -1;
static char crash_stack[1 << 16];

/* Formats without the C library: a signal handler may only use what is async-signal-safe. */
static void put_str(char *b, int *n, const char *s)
{
	while (*s && *n < 120)
		b[(*n)++] = *s++;
}

static void put_num(char *b, int *n, unsigned long v, unsigned base)
{
	char d[24];
	int k = 0;

	do {
		d[k++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && k < 24);
	while (k && *n < 120)
		b[(*n)++] = d[--k];
}

static void on_crash(int sig, siginfo_t *si, void *ctx)
{
	char b[128];
	int n = 0;
	unsigned long pc = 0;

#if defined(__x86_64__)
	pc = (unsigned long)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	pc = (unsigned long)((ucontext_t *)ctx)->uc_mcontext.pc;
#endif
	put_str(b, &n, "!crash ");
	put_num(b, &n, (unsigned long)sig, 10);
	put_str(b, &n, " ");
	if (sig == SIGSYS) {
		put_num(b, &n, (unsigned long)si->si_syscall, 10);
	} else {
		put_str(b, &n, "-1");
	}
	put_str(b, &n, " 0x");
	put_num(b, &n, pc, 16);
	b[n++] = '\n';
	if (write(crash_fd, b, (size_t)n) < 0) {
		/* Nothing more to do: the parent sees the exit status. */
	}
	_exit(128 + sig);
}

int pinreplay_install_crash_handlers(int fd)
{
	static const int signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS };
	stack_t ss;
	struct sigaction sa;
	size_t i;

	crash_fd = fd;
	memset(&ss, 0, sizeof(ss));
	ss.ss_sp = crash_stack;
	ss.ss_size = sizeof(crash_stack);
	if (sigaltstack(&ss, NULL) != 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_crash;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (sigaction(signals[i], &sa, NULL) != 0)
			return -1;
	return 0;
}

int pinreplay_install_sandbox(void)
{
#if defined(__x86_64__)
	static const long allowed[] = {
		__NR_read, __NR_write, __NR_readv, __NR_writev, __NR_pread64, __NR_close, __NR_lseek,
		__NR_fstat, __NR_newfstatat, __NR_poll, __NR_ppoll,
		__NR_mmap, __NR_munmap, __NR_mprotect, __NR_mremap, __NR_madvise, __NR_brk,
		__NR_rt_sigaction, __NR_rt_sigprocmask, __NR_rt_sigreturn, __NR_sigaltstack,
		__NR_futex, __NR_sched_yield, __NR_sched_getaffinity, __NR_membarrier,
		__NR_nanosleep, __NR_clock_nanosleep, __NR_clock_gettime, __NR_gettimeofday,
		__NR_getpid, __NR_gettid, __NR_tgkill, __NR_getrandom,
		__NR_set_robust_list, __NR_rseq, __NR_exit, __NR_exit_group,
	};
	enum { N = sizeof(allowed) / sizeof(allowed[0]) };
	struct sock_filter f[N + 16];
	struct sock_fprog prog;
	int k = 0;
	int i;

	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	/* clone3 cannot be looked into: make the C library fall back to clone. */
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	/* stdio asks whether its stream is a terminal: none is, and no ioctl does anything here. */
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 1);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTTY);
	/* clone only for a thread: a new process would leave the filter's reach to exec. */
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, N + 2, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	for (i = 0; i < N; i++)
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i], (unsigned char)(N - i), 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	prog.len = (unsigned short)k;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
#else
	errno = EOPNOTSUPP;
	return -1;
#endif
}

int pinreplay_library_of(const void *p, unsigned long *base, const char **path)
{
	Dl_info info;

	if (dladdr(p, &info) == 0 || info.dli_fbase == NULL || info.dli_fname == NULL)
		return -1;
	*base = (unsigned long)info.dli_fbase;
	*path = info.dli_fname;
	return 0;
}
