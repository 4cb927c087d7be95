/* Intrusive doubly linked lists. */
#ifndef UTIL_LIST_H
#define UTIL_LIST_H

#include <stddef.h>
#include <stdbool.h>

struct list_node {
	struct list_node *prev, *next;
};

#define LIST_INIT(name) { &(name), &(name) }

static inline void list_init(struct list_node *h) { h->prev = h->next = h; }
static inline bool list_empty(const struct list_node *h) { return h->next == h; }
static inline bool list_linked(const struct list_node *n) { return n->next && n->next != n; }

static inline void list_insert_before(struct list_node *pos, struct list_node *n)
{
	n->prev = pos->prev;
	n->next = pos;
	pos->prev->next = n;
	pos->prev = n;
}

static inline void list_add_tail(struct list_node *h, struct list_node *n) { list_insert_before(h, n); }

static inline void list_del(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define list_first(h, type, member) list_entry((h)->next, type, member)
#define list_for_each(pos, h) for (pos = (h)->next; pos != (h); pos = pos->next)
#define list_for_each_safe(pos, tmp, h) \
	for (pos = (h)->next, tmp = pos->next; pos != (h); pos = tmp, tmp = pos->next)

#endif
