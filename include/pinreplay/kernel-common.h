/*
 * What every era's kernel header shares: the kernel's basic types, attributes and constants,
 * the one task and its mm, VMAs, frames and printk, backed by the simulated world (world.h).
 * kernel-4.16.h and kernel-later.h build each era's API on it.
 *
 * What the simulation does not have is simple here: there is one task and it is current, no
 * page is compound, no VMA is fs-dax, locks are never contended and only count what they cost.
 */
#ifndef PINREPLAY_KERNEL_COMMON_H
#define PINREPLAY_KERNEL_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "world.h"

/* The C library's allocator, declared here: its headers would clash with the kernel's names. */
extern void *malloc(size_t size);
extern void *calloc(size_t nmemb, size_t size);
extern void *realloc(void *ptr, size_t size);
extern void free(void *ptr);

/* Every helper here is the world's, not the engine's. */
#define PR_SHIM static inline __attribute__((unused))

/* --- Types and attributes --------------------------------------------------------------- */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;
typedef u64 dma_addr_t;
typedef u64 phys_addr_t;
typedef struct { int counter; } atomic_t;

struct rb_node { struct rb_node *rb_left, *rb_right; unsigned long rb_parent_color; };
struct rb_root { struct rb_node *rb_node; };
struct rw_semaphore { long count; };

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define __always_inline inline __attribute__((always_inline))
#define noinline __attribute__((noinline))
#define __maybe_unused __attribute__((unused))
#define __must_check __attribute__((warn_unused_result))
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define smp_rmb() __asm__ __volatile__("" ::: "memory")
#define smp_wmb() __asm__ __volatile__("" ::: "memory")
#define smp_mb() __asm__ __volatile__("" ::: "memory")
#define BUG() __builtin_trap()
#define BUG_ON(c) do { if (unlikely(c)) BUG(); } while (0)
#define WARN_ON(c) ({ int __pr_warn_on = !!(c); unlikely(__pr_warn_on); })
#define WARN_ON_ONCE(c) WARN_ON(c)
#define WARN_ONCE(c, fmt, ...) WARN_ON(c)
#define WARN(c, fmt, ...) WARN_ON(c)

/* The kernel's min()/max() refuse mixed types at compile time; so do these. */
#define min(x, y) ({ __typeof__(x) __pr_x = (x); __typeof__(y) __pr_y = (y); \
	(void)(&__pr_x == &__pr_y); __pr_x < __pr_y ? __pr_x : __pr_y; })
#define max(x, y) ({ __typeof__(x) __pr_x = (x); __typeof__(y) __pr_y = (y); \
	(void)(&__pr_x == &__pr_y); __pr_x > __pr_y ? __pr_x : __pr_y; })
#define min_t(type, x, y) ({ type __pr_x = (x); type __pr_y = (y); __pr_x < __pr_y ? __pr_x : __pr_y; })
#define max_t(type, x, y) ({ type __pr_x = (x); type __pr_y = (y); __pr_x > __pr_y ? __pr_x : __pr_y; })

/* --- Constants ---------------------------------------------------------------------------- */

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))

#define EPERM 1
#define ESRCH 3
#define EINTR 4
#define E2BIG 7
#define EAGAIN 11
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define ENODEV 19
#define EINVAL 22
#define ENOSPC 28
#define EOVERFLOW 75
#define EOPNOTSUPP 95

#define IOMMU_READ (1 << 0)
#define IOMMU_WRITE (1 << 1)

#define FOLL_WRITE 0x01
#define FOLL_FORCE 0x10

#define VM_READ PINREPLAY_VM_READ
#define VM_WRITE PINREPLAY_VM_WRITE
#define VM_EXEC PINREPLAY_VM_EXEC
#define VM_SHARED PINREPLAY_VM_SHARED
#define VM_PFNMAP PINREPLAY_VM_PFNMAP
#define VM_IO PINREPLAY_VM_IO
#define VM_HUGETLB PINREPLAY_VM_HUGETLB
#define VM_MIXEDMAP PINREPLAY_VM_MIXEDMAP
#define VM_HUGEPAGE PINREPLAY_VM_HUGEPAGE

#define CAP_IPC_LOCK 14
#define RLIMIT_MEMLOCK 8

/* --- The task, its mm, its VMAs ------------------------------------------------------------- */

struct mm_struct {
	unsigned long locked_vm;
	struct rw_semaphore mmap_sem;	/* 4.x */
	struct rw_semaphore mmap_lock;	/* 5.8 on */
};

struct task_struct {
	struct mm_struct *mm;
	char comm[16];
};

struct vm_area_struct {
	struct mm_struct *vm_mm;
	unsigned long vm_start;
	unsigned long vm_end;
	unsigned long vm_flags;
	unsigned long vm_pgoff;
};

/* The world of the call in progress, and the one task. Plain statics, not thread-locals (a
 * thread-local of a loaded library costs a __tls_get_addr call on every access): hosts replay
 * in parallel, so one call at a time runs in a library, under pr_lock (pr_world_enter()). */
static struct pinreplay_world *pr_world;
/* The class of the stretch of frames found last: classes change only between statements,
 * so most pages of a call need no call into the world. */
static struct {
	unsigned long start, end;
	int cls;
} pr_class;
/* The VMA GUP went through last, [start, end): the same for every page of the call up to end. */
static struct pinreplay_vma pr_gup_vma;

static int pr_lock;
extern int sched_yield(void);


/*
 * put_page() and unpin_user_page() of consecutive frames, gathered into one call into the
 * world while an unpin entry point runs (pr_puts.defer): nothing reads a reference count in
 * between, and any other call into the world takes what was gathered first.
 */
static struct {
	unsigned long pfn, n;
	int defer;
} pr_puts;

/*
 * One-page GUPs the world said it would answer without a lookup or a fault (its open run):
 * served here and handed to the world in one call, before any other call into it.
 */
static struct {
	unsigned long vpn, end, pfn, taken;
	int write, open;
} pr_run;

PR_SHIM void pr_flush_gets(void)
{
	if (pr_run.taken)
		pr_world->gup_run_take(pr_world->host, pr_run.taken);
	pr_run.taken = 0;
	pr_run.open = 0;
}

PR_SHIM void pr_flush_puts(void)
{
	pr_flush_gets();
	if (!pr_puts.n)
		return;
	pr_world->put_pages(pr_world->host, pr_puts.pfn, pr_puts.n);
	pr_puts.n = 0;
}

PR_SHIM void pr_put(unsigned long pfn)
{
	if (pr_puts.n && pfn != pr_puts.pfn + pr_puts.n)
		pr_flush_puts();
	if (!pr_puts.n)
		pr_puts.pfn = pfn;
	pr_puts.n++;
	if (!pr_puts.defer)
		pr_flush_puts();
}

PR_SHIM void pr_world_enter(struct pinreplay_world *w)
{
	while (__atomic_exchange_n(&pr_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
	pr_world = w;
	/* Hosts come and go at reused addresses: the caches live for one call. */
	pr_class.start = pr_class.end = 0;
	pr_run.open = pr_run.taken = 0;
	pr_gup_vma.start = pr_gup_vma.end = 0;
}

PR_SHIM void pr_world_leave(void)
{
	pr_flush_puts();
	pr_world = 0;
	__atomic_store_n(&pr_lock, 0, __ATOMIC_RELEASE);
}

static struct mm_struct pr_mm;
static struct task_struct pr_task = { .mm = 0, .comm = "qemu" };
/* find_vma_intersection() answers live in a small ring, valid for the next few lookups. */
static struct vm_area_struct pr_vmas[8];
static unsigned int pr_vma_next;

#define current (&pr_task)

PR_SHIM struct mm_struct *get_task_mm(struct task_struct *task) { return task->mm; }
PR_SHIM void mmput(struct mm_struct *mm) { (void)mm; }
PR_SHIM int task_pid_nr(struct task_struct *task) { (void)task; return 1; }

PR_SHIM bool capable(int cap) { return cap == CAP_IPC_LOCK && pr_world->cap_ipc_lock; }
PR_SHIM bool has_capability(struct task_struct *task, int cap) { (void)task; return capable(cap); }
PR_SHIM unsigned long rlimit(unsigned int limit)
{
	return limit == RLIMIT_MEMLOCK ? pr_world->rlimit_memlock : ~0UL;
}
PR_SHIM unsigned long task_rlimit(const struct task_struct *task, unsigned int limit)
{
	(void)task;
	return rlimit(limit);
}

/* The mmap lock: never contended here; each acquisition costs. */
PR_SHIM void down_read(struct rw_semaphore *sem) { (void)sem; pr_world->counts.mmap_lock++; }
PR_SHIM void up_read(struct rw_semaphore *sem) { (void)sem; }
PR_SHIM void down_write(struct rw_semaphore *sem) { (void)sem; pr_world->counts.mmap_lock++; }
/* The one writer is vfio_lock_acct(): its cost is counted with the lock. */
PR_SHIM int down_write_killable(struct rw_semaphore *sem)
{
	down_write(sem);
	pr_world->counts.vfio_lock_acct++;
	return 0;
}
PR_SHIM void up_write(struct rw_semaphore *sem) { (void)sem; }

PR_SHIM struct vm_area_struct *pr_vma_slot(const struct pinreplay_vma *v)
{
	struct vm_area_struct *vma = &pr_vmas[pr_vma_next++ % 8];
	vma->vm_mm = &pr_mm;
	vma->vm_start = v->start;
	vma->vm_end = v->end;
	vma->vm_flags = v->flags;
	vma->vm_pgoff = v->pgoff;
	return vma;
}

PR_SHIM struct vm_area_struct *find_vma_intersection(struct mm_struct *mm, unsigned long start,
						     unsigned long end)
{
	struct pinreplay_vma v;
	(void)mm;
	pr_flush_puts();
	if (!pr_world->find_vma_intersection(pr_world->host, start, end, &v))
		return 0;
	return pr_vma_slot(&v);
}

PR_SHIM unsigned long vma_pages(struct vm_area_struct *vma)
{
	return (vma->vm_end - vma->vm_start) >> PAGE_SHIFT;
}

PR_SHIM bool vma_is_fsdax(struct vm_area_struct *vma) { (void)vma; return false; }

/* --- Counting the engine's own calls ----------------------------------------------------------- */

/* The cut defines put_pfn(), vaddr_get_pfn(s)() and (5.15 on) is_invalid_reserved_pfn() as
 * macros that call these, right after the file's definitions (CEngineLoader.countingMacros). */
PR_SHIM void pr_count_put_pfn(void) { pr_world->counts.put_pfn++; }
PR_SHIM void pr_count_walk_step(void) { pr_world->counts.pages_walked++; }

/* --- External pins ------------------------------------------------------------------------ */

/* The external pins of the dma of the call in progress, in iova order: loaded when they are
 * not those of the last load (pinreplay_dma.pins_version), so a walk over many chunks of one
 * dma copies its pins once. */
static struct pinreplay_pin *pr_wpins;
static long pr_nwpins, pr_wpins_cap;
static unsigned long long pr_wpins_version = ~0ULL;

/* Makes the pins of d current; whether they had to be loaded. */
PR_SHIM int pr_load_world_pins(const struct pinreplay_dma *d)
{
	long n;

	if (d->pins_version == pr_wpins_version)
		return 0;
	n = pr_world->dma_pins(pr_world->host, d->handle, pr_wpins, pr_wpins_cap);
	if (n > pr_wpins_cap) {
		struct pinreplay_pin *grown = realloc(pr_wpins, (size_t)n * sizeof(*grown));
		if (!grown)
			__builtin_trap();
		pr_wpins = grown;
		pr_wpins_cap = n;
		n = pr_world->dma_pins(pr_world->host, d->handle, pr_wpins, pr_wpins_cap);
	}
	pr_nwpins = n;
	pr_wpins_version = d->pins_version;
	return 1;
}

/* An external pin runs without the dma's pins (no kernel's vfio_pin_page_external() looks at
 * them, and loading them for every page pinned would make n pins cost n^2): none are there. */
PR_SHIM void pr_forget_world_pins(void)
{
	pr_nwpins = 0;
	pr_wpins_version = ~0ULL;
}

/* How many pins lie below iova (they are in iova order). */
PR_SHIM long pr_world_pins_below(unsigned long long iova)
{
	long lo = 0, hi = pr_nwpins;

	while (lo < hi) {
		long mid = lo + (hi - lo) / 2;
		if (pr_wpins[mid].iova < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The pin at exactly iova, or NULL. */
PR_SHIM const struct pinreplay_pin *pr_find_world_pin(unsigned long long iova)
{
	long i = pr_world_pins_below(iova);

	return i < pr_nwpins && pr_wpins[i].iova == iova ? &pr_wpins[i] : 0;
}

/* --- Pages -------------------------------------------------------------------------------- */

/* A struct page pointer is the frame's slot in x86-64's vmemmap: comparable, never dereferenced. */
struct page;
#define PR_VMEMMAP 0xffffea0000000000UL
#define pfn_to_page(pfn) ((struct page *)(PR_VMEMMAP + (unsigned long)(pfn) * 64))
#define page_to_pfn(page) (((unsigned long)(page) - PR_VMEMMAP) / 64)

PR_SHIM int pr_pfn_class(unsigned long pfn)
{
	if (pfn - pr_class.start >= pr_class.end - pr_class.start) {
		unsigned long end = pfn + 1;
		pr_class.cls = pr_world->pfn_class_stretch(pr_world->host, pfn, &end);
		pr_class.start = pfn;
		pr_class.end = end;
	}
	return pr_class.cls;
}

PR_SHIM bool pfn_valid(unsigned long pfn)
{
	return pr_pfn_class(pfn) != PINREPLAY_PFN_MMIO;
}
PR_SHIM struct page *compound_head(struct page *page) { return page; }
PR_SHIM int PageTail(struct page *page) { (void)page; return 0; }
PR_SHIM int PageCompound(struct page *page) { (void)page; return 0; }
PR_SHIM int PageReserved(struct page *page)
{
	return pr_pfn_class(page_to_pfn(page)) == PINREPLAY_PFN_RESERVED;
}
PR_SHIM void SetPageDirty(struct page *page) { (void)page; }
PR_SHIM void put_page(struct page *page) { pr_put(page_to_pfn(page)); }

/* --- printk ----------------------------------------------------------------------------------- */

/* Formats are checked as the kernel's are; nothing is printed. */
static inline __attribute__((unused, format(printf, 1, 2))) void pr_discard(const char *fmt, ...)
{
	(void)fmt;
}
#define pr_warn(fmt, ...) pr_discard(fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) pr_discard(fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) pr_discard(fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...) pr_discard(fmt, ##__VA_ARGS__)

#endif /* PINREPLAY_KERNEL_COMMON_H */
