/*
 * fork.c: every lock of libedgert stays usable in the child of a fork().
 *
 * fork() copies only the calling thread. A lock another thread held at that
 * moment stays held in the child for ever, and the next load, bind, nexus
 * call, type registration, manifest parse or guard installation there
 * hangs. So libedgert registers pthread_atfork handlers, once:
 *
 * - prepare (in the forking thread, before the fork) first waits, for at
 *   most a second, for a dlopen or dlclose of the loader in progress on
 *   another thread (its load lock): glibc resets its own loader lock in the
 *   child but not the state a dlopen or dlclose leaves while it maps or
 *   unmaps, and the child's next dlopen would stop on an ld.so assertion.
 *   The wait is bounded because that thread may be running a module
 *   constructor that waits for this very fork (one that calls
 *   pthread_atfork waits for glibc's fork-handler lock, held now); glibc's
 *   state is consistent while constructors and destructors run, so the
 *   fork then goes on and the child is still whole. Then prepare takes
 *   every other lock of the core in one fixed order: the loader's registry
 *   lock and each module handle's lock, the nexus list lock, each nexus's
 *   lock and each kernel's lock, the type registry lock, the struct
 *   layout list's lock, the manifest reader's cJSON lock, the guard's
 *   install lock. Each of these is held only for a few instructions and never while foreign code runs (a
 *   kernel, a constructor or destructor, a reference or observer callback),
 *   and none is held while another is taken, so prepare waits only for
 *   those few instructions and cannot deadlock with a thread holding one.
 *   The data they guard is therefore consistent at the fork.
 * - parent releases them all, in the reverse order.
 * - child releases them as well: they are plain mutexes, taken by the
 *   forking thread, which is the child's thread and their owner there.
 *   The load lock is re-initialised instead: its holder may be a thread
 *   the child does not have, and glibc refuses the child's thread (whose
 *   id changed) the unlock of a recursive mutex.
 *
 * What cannot be made whole in the child: a call in flight on another
 * thread at the fork never returns there, so its module's mapping (and a
 * nexus version it holds) is never released in the child.
 */
#include "internal.h"

#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void prepare(void) {
  edgert__loader_fork_prepare();
  edgert__nexus_fork_prepare();
  edgert__types_fork_prepare();
  edgert__struct_fork_prepare();
  edgert__manifest_fork_prepare();
  edgert__guard_fork_prepare();
}

static void parent(void) {
  edgert__guard_fork_parent();
  edgert__manifest_fork_parent();
  edgert__struct_fork_parent();
  edgert__types_fork_parent();
  edgert__nexus_fork_parent();
  edgert__loader_fork_parent();
}

static void child(void) {
  edgert__guard_fork_child();
  edgert__manifest_fork_child();
  edgert__struct_fork_child();
  edgert__types_fork_child();
  edgert__nexus_fork_child();
  edgert__loader_fork_child();
}

static void register_handlers(void) {
  /* Fails only with ENOMEM at start-up; there is nobody to tell, and the
   * process then behaves as before these handlers existed. */
  (void)pthread_atfork(prepare, parent, child);
}

void edgert__fork_init(void) { pthread_once(&once, register_handlers); }

/* The shared library registers as soon as it is loaded; in a static link
 * this file is pulled in by the parts' calls to edgert__fork_init, and the
 * constructor then runs at program start as well. */
__attribute__((constructor)) static void fork_init_at_load(void) { edgert__fork_init(); }
