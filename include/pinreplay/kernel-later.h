/*
 * The kernel API that the pinning code of drivers/vfio/vfio_iommu_type1.c uses from outside
 * itself, 5.12 to 7.x (the eras 5.15, 6.1, 6.12, 6.15 and 6.18), backed by pinreplay's
 * simulated world (world.h). Each era's header (kernel-6.18.h) sets PINREPLAY_ERA and
 * includes this one; where the kernel's API changed, the era picks the form its file calls:
 *
 *   - pin_user_pages_remote(): with a vmas argument up to 6.4 (eras 5.15, 6.1), without after;
 *   - follow_pte(mm, ...) with pte_t up to 6.9 (5.15, 6.1); follow_pfnmap_start() with
 *     struct follow_pfnmap_args from 6.12, addr_mask filled in every era that has it.
 *
 * What the file itself defines above its pinning code and pinreplay needs to back with the
 * world is here too: struct vfio_dma, struct vfio_batch, struct vfio_pfn, and the external pin
 * lookups vfio_find_vpfn(), vfio_find_vpfn_range() and vpfn_pages(). A file that defines one
 * of those lookups (or num_pages_contiguous()) keeps its own: pinreplay defines
 * PR_HAVE_<name> for every function the cut holds, and dma->pfn_list is a real binary tree of
 * the dma's external pins, so the file's own walk of it works.
 */
#ifndef PINREPLAY_KERNEL_LATER_H
#define PINREPLAY_KERNEL_LATER_H

#include "kernel-common.h"

#ifndef PINREPLAY_ERA
#error "include an era's header (kernel-5.15.h ... kernel-6.18.h), not kernel-later.h"
#endif

/* --- More of the kernel's basics ----------------------------------------------------------- */

#define U16_MAX ((u16)~0U)
#define U32_MAX ((u32)~0U)
#define ULONG_MAX (~0UL)
#define BITS_PER_LONG 64
#define __read_mostly
#define __user
#define __force
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define abs(x) ({ __typeof__(x) __pr_a = (x); __pr_a < 0 ? -__pr_a : __pr_a; })
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
#define ALIGN(x, a) (((x) + ((__typeof__(x))(a) - 1)) & ~((__typeof__(x))(a) - 1))
#define PFN_PHYS(x) ((phys_addr_t)(x) << PAGE_SHIFT)
#define PHYS_PFN(x) ((unsigned long)((x) >> PAGE_SHIFT))
#define might_sleep() do { } while (0)
#define lockdep_assert_held(l) do { (void)(l); } while (0)
#define pr_warn_once(fmt, ...) pr_discard(fmt, ##__VA_ARGS__)
#define pr_warn_ratelimited(fmt, ...) pr_discard(fmt, ##__VA_ARGS__)

#define ENOENT 2

typedef unsigned int gfp_t;
#define GFP_KERNEL 0U
#define GFP_KERNEL_ACCOUNT 0U
#define GFP_NOWAIT 0U
#define __GFP_NOWARN 0U
PR_SHIM void *kmalloc(size_t size, gfp_t gfp) { (void)gfp; return malloc(size); }
PR_SHIM void *kzalloc(size_t size, gfp_t gfp) { (void)gfp; return calloc(1, size); }
PR_SHIM void *kvzalloc(size_t size, gfp_t gfp) { (void)gfp; return calloc(1, size); }
PR_SHIM void kfree(const void *p) { free((void *)p); }
PR_SHIM void kvfree(const void *p) { free((void *)p); }
/* 7.x: the typed allocators. */
#define kmalloc_obj(obj, gfp) ((__typeof__(obj) *)kmalloc(sizeof(obj), gfp))
#define kzalloc_obj(obj, gfp) ((__typeof__(obj) *)kzalloc(sizeof(obj), gfp))
PR_SHIM unsigned long __get_free_page(gfp_t gfp) { (void)gfp; return (unsigned long)malloc(PAGE_SIZE); }
PR_SHIM void free_page(unsigned long addr) { free((void *)addr); }

PR_SHIM void cond_resched(void) { }

#define FOLL_LONGTERM 0x100
#define FOLL_PIN 0x40000
#define FAULT_FLAG_WRITE 0x01
#define FAULT_FLAG_REMOTE 0x80

/* A vaddr_get_pfns() call (its pages are counted by the walk's checks). */
PR_SHIM void pr_count_vaddr_get_pfn(int walk)
{
	(void)walk;
	pr_world->counts.vaddr_get_pfn++;
}

/* --- Red-black trees: only what walking one takes --------------------------------------------- */

#define RB_ROOT ((struct rb_root){ 0 })
#define RB_EMPTY_ROOT(root) ((root)->rb_node == 0)
#define rb_entry(ptr, type, member) container_of(ptr, type, member)
#define rb_parent(node) ((struct rb_node *)((node)->rb_parent_color & ~3UL))

PR_SHIM struct rb_node *rb_first(const struct rb_root *root)
{
	struct rb_node *n = root->rb_node;
	if (!n)
		return 0;
	while (n->rb_left)
		n = n->rb_left;
	return n;
}

PR_SHIM struct rb_node *rb_next(const struct rb_node *node)
{
	struct rb_node *parent;
	if (node->rb_right) {
		node = node->rb_right;
		while (node->rb_left)
			node = node->rb_left;
		return (struct rb_node *)node;
	}
	while ((parent = rb_parent(node)) && node == parent->rb_right)
		node = parent;
	return parent;
}

PR_SHIM struct rb_node *rb_prev(const struct rb_node *node)
{
	struct rb_node *parent;
	if (node->rb_left) {
		node = node->rb_left;
		while (node->rb_right)
			node = node->rb_right;
		return (struct rb_node *)node;
	}
	while ((parent = rb_parent(node)) && node == parent->rb_left)
		node = parent;
	return parent;
}

/* --- The mm ------------------------------------------------------------------------------ */

PR_SHIM void mmap_read_lock(struct mm_struct *mm) { down_read(&mm->mmap_lock); }
PR_SHIM void mmap_read_unlock(struct mm_struct *mm) { up_read(&mm->mmap_lock); }
PR_SHIM void mmap_write_lock(struct mm_struct *mm) { down_write(&mm->mmap_lock); }
/* The one writer is vfio_lock_acct(): its cost is counted with the lock. */
PR_SHIM int mmap_write_lock_killable(struct mm_struct *mm) { return down_write_killable(&mm->mmap_lock); }
PR_SHIM void mmap_write_unlock(struct mm_struct *mm) { up_write(&mm->mmap_lock); }
PR_SHIM void mmap_assert_write_locked(struct mm_struct *mm) { (void)mm; }
PR_SHIM bool mmget_not_zero(struct mm_struct *mm) { (void)mm; return true; }
PR_SHIM void mmgrab(struct mm_struct *mm) { (void)mm; }
PR_SHIM void mmdrop(struct mm_struct *mm) { (void)mm; }
#define untagged_addr(addr) (addr)
#define untagged_addr_remote(mm, addr) ((void)(mm), (addr))

/* mm/util.c: charge or uncharge locked_vm, checked against RLIMIT_MEMLOCK (unsigned) unless
 * bypass_rlim. The caller holds the mmap lock for writing. */
PR_SHIM int __account_locked_vm(struct mm_struct *mm, unsigned long pages, bool inc, struct task_struct *task,
				bool bypass_rlim)
{
	unsigned long locked_vm = mm->locked_vm, limit;
	int ret = 0;

	if (inc) {
		if (!bypass_rlim) {
			limit = task_rlimit(task, RLIMIT_MEMLOCK) >> PAGE_SHIFT;
			if (locked_vm + pages > limit)
				ret = -ENOMEM;
		}
		if (!ret)
			mm->locked_vm = locked_vm + pages;
	} else {
		mm->locked_vm = locked_vm - pages;
	}
	return ret;
}

PR_SHIM int account_locked_vm(struct mm_struct *mm, unsigned long pages, bool inc)
{
	int ret;
	if (pages == 0 || !mm)
		return 0;
	mmap_write_lock(mm);
	ret = __account_locked_vm(mm, pages, inc, current, capable(CAP_IPC_LOCK));
	mmap_write_unlock(mm);
	return ret;
}

PR_SHIM struct vm_area_struct *vma_lookup(struct mm_struct *mm, unsigned long addr)
{
	return find_vma_intersection(mm, addr, addr + 1);
}

/* --- Pages: pins, the zero page, folios --------------------------------------------------- */

PR_SHIM bool is_zero_pfn(unsigned long pfn) { return pr_world->has_zero_pfn && pfn == pr_world->zero_pfn; }

struct folio;
#define page_folio(page) ((struct folio *)(page))
#define folio_page(folio, n) ((void)(n), (struct page *)(folio))	/* no compound pages */
#define folio_pfn(folio) page_to_pfn((struct page *)(folio))
#define page_to_phys(page) PFN_PHYS(page_to_pfn(page))

/* The pfns GUP answers, before they become struct page pointers. */
static unsigned long *pr_gup_pfns;
static unsigned long pr_gup_cap;

/* pin_user_pages_remote() with FOLL_LONGTERM (the world's only kind of remote pin): the rules
 * of the era's profile (unshare, the zero page, refusing raw pfn VMAs). */
PR_SHIM long pr_pin_user_pages_remote(unsigned long start, unsigned long nr_pages, unsigned int gup_flags,
				      struct page **pages)
{
	long ret, i;

	if (nr_pages > pr_gup_cap) {
		unsigned long *grown = realloc(pr_gup_pfns, nr_pages * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		pr_gup_pfns = grown;
		pr_gup_cap = nr_pages;
	}
	pr_flush_puts();
	ret = pr_world->pin_user_pages(pr_world->host, start, nr_pages, !!(gup_flags & FOLL_WRITE), pr_gup_pfns);
	for (i = 0; i < ret; i++)
		pages[i] = pfn_to_page(pr_gup_pfns[i]);
	return ret;
}

#if PINREPLAY_ERA < 605
PR_SHIM long pin_user_pages_remote(struct mm_struct *mm, unsigned long start, unsigned long nr_pages,
				   unsigned int gup_flags, struct page **pages, struct vm_area_struct **vmas,
				   int *locked)
{
	(void)mm;
	(void)vmas;
	(void)locked;
	return pr_pin_user_pages_remote(start, nr_pages, gup_flags, pages);
}
#else
PR_SHIM long pin_user_pages_remote(struct mm_struct *mm, unsigned long start, unsigned long nr_pages,
				   unsigned int gup_flags, struct page **pages, int *locked)
{
	(void)mm;
	(void)locked;
	return pr_pin_user_pages_remote(start, nr_pages, gup_flags, pages);
}
#endif

PR_SHIM void unpin_user_page(struct page *page) { pr_put(page_to_pfn(page)); }

PR_SHIM void unpin_user_pages_dirty_lock(struct page **pages, unsigned long npages, bool make_dirty)
{
	unsigned long i;
	(void)make_dirty;
	for (i = 0; i < npages; i++)
		unpin_user_page(pages[i]);
}

PR_SHIM void unpin_user_pages(struct page **pages, unsigned long npages)
{
	unpin_user_pages_dirty_lock(pages, npages, false);
}

PR_SHIM void unpin_user_page_range_dirty_lock(struct page *page, unsigned long npages, bool make_dirty)
{
	pr_flush_puts();
	pr_world->unpin_user_page_range(pr_world->host, page_to_pfn(page), npages, make_dirty);
}

#ifndef PR_HAVE_num_pages_contiguous
/* 6.18's mm.h: how many of the pages follow one another in memory (at least one). */
PR_SHIM unsigned long num_pages_contiguous(struct page **pages, size_t nr_pages)
{
	unsigned long first = page_to_pfn(pages[0]);
	size_t i;
	for (i = 1; i < nr_pages; i++)
		if (page_to_pfn(pages[i]) != first + i)
			break;
	return i;
}
#endif

/* --- Page tables: follow_pte(), follow_pfnmap_start(), fixup_user_fault() ------------------ */

typedef struct { unsigned long pfn; int writable; } pte_t;
typedef struct { int locked; } spinlock_t;
typedef struct { unsigned long pgprot; } pgprot_t;

#if PINREPLAY_ERA < 610
/* The pte found last: follow_pte() hands out a pointer to it. */
static pte_t pr_pte;

PR_SHIM int follow_pte(struct mm_struct *mm, unsigned long address, pte_t **ptepp, spinlock_t **ptlp)
{
	static spinlock_t ptl;
	struct pinreplay_pfnmap out;
	(void)mm;
	pr_flush_puts();
	if (pr_world->follow_pte(pr_world->host, address, &out))
		return -EINVAL;
	pr_pte.pfn = out.pfn;
	pr_pte.writable = out.writable;
	*ptepp = &pr_pte;
	*ptlp = &ptl;
	return 0;
}
#define pte_pfn(pte) ((pte).pfn)
#define pte_write(pte) ((pte).writable)
#define pte_unmap_unlock(ptep, ptl) do { (void)(ptep); (void)(ptl); } while (0)
#else
struct follow_pfnmap_args {
	struct vm_area_struct *vma;
	unsigned long address;
	spinlock_t *lock;
	pte_t *ptep;
	unsigned long pfn;
	unsigned long addr_mask;
	pgprot_t pgprot;
	bool writable;
	bool special;
};

PR_SHIM int follow_pfnmap_start(struct follow_pfnmap_args *args)
{
	struct pinreplay_pfnmap out;
	pr_flush_puts();
	if (pr_world->follow_pfnmap(pr_world->host, args->address, args->vma->vm_flags, &out))
		return -EINVAL;
	args->pfn = out.pfn;
	args->addr_mask = out.addr_mask;
	args->writable = out.writable;
	args->special = true;
	return 0;
}

PR_SHIM void follow_pfnmap_end(struct follow_pfnmap_args *args) { (void)args; }
#endif

/* Faults the page in as the world's fault rules say; never drops the mmap lock here. */
PR_SHIM int fixup_user_fault(struct mm_struct *mm, unsigned long address, unsigned int fault_flags, bool *unlocked)
{
	(void)mm;
	(void)unlocked;
	pr_flush_puts();
	return pr_world->fixup_user_fault(pr_world->host, address, !!(fault_flags & FAULT_FLAG_WRITE));
}

/* --- vfio_iommu_type1.c above its pinning code ----------------------------------------------- */

static bool disable_hugepages;

struct vfio_dma {
	struct rb_node node;
	dma_addr_t iova;
	unsigned long vaddr;
	size_t size;
	int prot;
	bool iommu_mapped;
	bool lock_cap;
	bool vaddr_invalid;
	bool has_rsvd;
	struct task_struct *task;
	struct rb_root pfn_list;
	unsigned long *bitmap;
	struct mm_struct *mm;
	size_t locked_vm;
	/* The container's dma. */
	void *pr_handle;
};

/* The counts are int until 6.14, unsigned int from 6.15 (consistent page-count types). */
#if PINREPLAY_ERA < 615
typedef int pr_batch_count;
#else
typedef unsigned int pr_batch_count;
#endif

struct vfio_batch {
	struct page **pages;
	struct page *fallback_page;
	pr_batch_count capacity;
	pr_batch_count size;
	pr_batch_count offset;
};

struct vfio_pfn {
	struct rb_node node;
	dma_addr_t iova;
	unsigned long pfn;
	unsigned int ref_count;
};

#define VFIO_BATCH_MAX_CAPACITY (PAGE_SIZE / sizeof(struct page *))

/* The external pins of the dma of the call in progress, in iova order: dma->pfn_list is a
 * balanced tree over them. */
static struct vfio_pfn *pr_pins;

#ifndef PR_HAVE_vfio_find_vpfn_range
PR_SHIM struct vfio_pfn *vfio_find_vpfn_range(struct vfio_dma *dma, dma_addr_t iova_start, dma_addr_t iova_end)
{
	struct rb_node *node = dma->pfn_list.rb_node;
	while (node) {
		struct vfio_pfn *vpfn = rb_entry(node, struct vfio_pfn, node);
		if (iova_end <= vpfn->iova)
			node = node->rb_left;
		else if (iova_start > vpfn->iova)
			node = node->rb_right;
		else
			return vpfn;
	}
	return 0;
}
#endif

#ifndef PR_HAVE_vfio_find_vpfn
PR_SHIM struct vfio_pfn *vfio_find_vpfn(struct vfio_dma *dma, dma_addr_t iova)
{
	struct rb_node *node = dma->pfn_list.rb_node;
	while (node) {
		struct vfio_pfn *vpfn = rb_entry(node, struct vfio_pfn, node);
		if (iova < vpfn->iova)
			node = node->rb_left;
		else if (iova > vpfn->iova)
			node = node->rb_right;
		else
			return vpfn;
	}
	return 0;
}
#endif

#ifndef PR_HAVE_vpfn_pages
/* 6.18: how many external pins lie in nr_pages pages from iova_start. */
PR_SHIM long vpfn_pages(struct vfio_dma *dma, dma_addr_t iova_start, long nr_pages)
{
	dma_addr_t iova_end = iova_start + ((dma_addr_t)nr_pages << PAGE_SHIFT);
	(void)dma;
	return pr_world_pins_below(iova_end) - pr_world_pins_below(iova_start);
}
#endif

#endif /* PINREPLAY_KERNEL_LATER_H */
