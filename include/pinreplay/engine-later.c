/*
 * The entry points of a C engine of the 5.15 to 6.18 eras. pinreplay compiles one translation
 * unit made of the functions cut from the user's vfio_iommu_type1.c (vfio_lock_acct(),
 * is_invalid_reserved_pfn(), put_pfn(), vaddr_get_pfns(), vfio_pin_pages_remote(),
 * vfio_unpin_pages_remote(), vfio_pin_page_external() and every helper of the file they call)
 * followed by this file, so these can call them.
 *
 * Each entry point makes the world current, rebuilds what the kernel would
 * hold between calls (the container's vfio_batch, the dma's tree of external pins), runs the
 * kernel function, and hands back locked_vm, has_rsvd and the batch. The cut counts the calls
 * the cost model prices itself (its counting macros).
 */

#define PR_EXPORT __attribute__((visibility("default")))

/* Builds a balanced tree over pr_pins[lo, hi) under parent; returns its root. */
static struct rb_node *pr_pin_tree(long lo, long hi, struct rb_node *parent)
{
	long mid;
	struct rb_node *node;

	if (lo >= hi)
		return 0;
	mid = lo + (hi - lo) / 2;
	node = &pr_pins[mid].node;
	node->rb_parent_color = (unsigned long)parent;
	node->rb_left = pr_pin_tree(lo, mid, node);
	node->rb_right = pr_pin_tree(mid + 1, hi, node);
	return node;
}

/* The dma's external pins, as the world holds them, as dma->pfn_list: the tree is built again
 * only when they changed since the last load. */
static void pr_load_pins(struct vfio_dma *dma, const struct pinreplay_dma *d)
{
	static struct rb_node *root;
	static long cap;
	long i;

	if (pr_load_world_pins(d)) {
		if (pr_nwpins > cap) {
			free(pr_pins);
			pr_pins = malloc((size_t)pr_nwpins * sizeof(*pr_pins));
			if (!pr_pins)
				__builtin_trap();
			cap = pr_nwpins;
		}
		for (i = 0; i < pr_nwpins; i++) {
			pr_pins[i].iova = pr_wpins[i].iova;
			pr_pins[i].pfn = pr_wpins[i].pfn;
			pr_pins[i].ref_count = pr_wpins[i].ref_count;
		}
		root = pr_pin_tree(0, pr_nwpins, 0);
	}
	dma->pfn_list.rb_node = root;
}

static void pr_enter(struct pinreplay_world *w, struct vfio_dma *dma,
							       const struct pinreplay_dma *d)
{
	pr_world_enter(w);
	pr_mm.locked_vm = w->locked_vm;
	pr_task.mm = &pr_mm;
	disable_hugepages = w->disable_hugepages != 0;
	dma->iova = d->iova;
	dma->vaddr = d->vaddr;
	dma->size = d->size;
	dma->prot = d->prot;
	dma->lock_cap = d->lock_cap != 0;
	dma->has_rsvd = d->has_rsvd != 0;
	dma->task = current;
	dma->mm = &pr_mm;
	dma->pr_handle = d->handle;
}

static void pr_leave(struct pinreplay_world *w, struct vfio_dma *dma,
							       struct pinreplay_dma *d)
{
	w->locked_vm = pr_mm.locked_vm;
	d->has_rsvd = dma->has_rsvd;
	pr_world_leave();
}

/* Which kernel's API this engine was built against. */
PR_EXPORT const char *pinreplay_kernel_api(void)
{
	return PINREPLAY_KERNEL_API;
}

/* The container's batch holds pages pinned and not yet consumed between the calls of one map:
 * it comes in as pfns and goes back out as pfns. A batch the engine left outside its own
 * bounds is a bug of the engine, stopped here as a crash. */
static struct page *pr_batch_pages[VFIO_BATCH_MAX_CAPACITY];

PR_EXPORT long pinreplay_vfio_pin_pages_remote(struct pinreplay_world *w, struct pinreplay_dma *d, unsigned long vaddr,
					       long npage, unsigned long *pfn_base, int lock_cap, unsigned long limit,
					       struct pinreplay_batch *b)
{
	struct vfio_dma dma = { 0 };
	struct vfio_batch batch = { 0 };
	unsigned int i;
	long ret;

	(void)lock_cap; /* dma->lock_cap */
	if (b->capacity > VFIO_BATCH_MAX_CAPACITY || b->size > b->capacity || b->offset > b->capacity - b->size)
		__builtin_trap();
	pr_enter(w, &dma, d);
	pr_load_pins(&dma, d);
	batch.pages = pr_batch_pages;
	batch.capacity = b->capacity;
	batch.size = b->size;
	batch.offset = b->offset;
	for (i = b->offset; i < b->offset + b->size; i++)
		pr_batch_pages[i] = pfn_to_page(b->pfns[i]);

	ret = vfio_pin_pages_remote(&dma, vaddr, npage, pfn_base, limit, &batch);

	if (batch.pages != pr_batch_pages || batch.size < 0 || batch.offset < 0 ||
	    (unsigned int)batch.size > b->capacity || (unsigned int)batch.offset > b->capacity - (unsigned int)batch.size)
		__builtin_trap();
	b->size = batch.size;
	b->offset = batch.offset;
	for (i = b->offset; i < b->offset + b->size; i++)
		b->pfns[i] = page_to_pfn(pr_batch_pages[i]);
	pr_leave(w, &dma, d);
	return ret;
}

PR_EXPORT long pinreplay_vfio_unpin_pages_remote(struct pinreplay_world *w, struct pinreplay_dma *d,
						 unsigned long long iova, unsigned long pfn, long npage,
						 int do_accounting)
{
	struct vfio_dma dma = { 0 };
	long ret;

	pr_enter(w, &dma, d);
	pr_load_pins(&dma, d);
	pr_puts.defer = 1;
	ret = vfio_unpin_pages_remote(&dma, iova, pfn, npage, do_accounting != 0);
	pr_puts.defer = 0;
	pr_flush_puts();
	pr_leave(w, &dma, d);
	return ret;
}

PR_EXPORT int pinreplay_vfio_pin_page_external(struct pinreplay_world *w, struct pinreplay_dma *d,
					       unsigned long vaddr, unsigned long *pfn_base, int do_accounting)
{
	struct vfio_dma dma = { 0 };
	int ret;

	pr_enter(w, &dma, d);
	pr_forget_world_pins();
	ret = vfio_pin_page_external(&dma, vaddr, pfn_base, do_accounting != 0);
	pr_leave(w, &dma, d);
	return ret;
}
