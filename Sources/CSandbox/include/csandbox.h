/*
 * The child side of an isolated C engine: a report of how it died, written to the parent's
 * pipe from the signal handler, and a seccomp filter that leaves it nothing but its pipe,
 * memory and threads.
 */
#ifndef PINREPLAY_CSANDBOX_H
#define PINREPLAY_CSANDBOX_H

/* On SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT or SIGSYS: write "!crash SIG SYSCALL PC\n" to fd
 * (SYSCALL is -1 but for SIGSYS), then exit with 128 + SIG. Returns 0, or -1 with errno. */
int pinreplay_install_crash_handlers(int fd);

/* Installs the seccomp filter (no_new_privs first). Allowed: read, write, close, memory,
 * signals, futexes, clocks, threads (clone with CLONE_THREAD), exit. clone3 fails ENOSYS, so
 * threads fall back to clone; anything else traps (SIGSYS). Returns 0, or -1 with errno
 * (an architecture without the filter: EOPNOTSUPP). */
int pinreplay_install_sandbox(void);

/* The load address and file of the shared object holding p (dladdr); 0 when found. */
int pinreplay_library_of(const void *p, unsigned long *base, const char **path);

#endif
