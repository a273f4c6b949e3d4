/*
 * resolve.h: the front of a load (src/resolve.c), shared with src/loader.c.
 * Never installed.
 *
 * - Names: a load argument without '/' is a library name, searched as the
 *   dynamic linker searches a dlopen'ed name; the path chosen replaces it.
 * - Linker scripts: a text file such as Debian's libm.so is named as what it
 *   is, with the library it stands for.
 * - The process's own libraries: a file the process already maps as a
 *   loaded object is bound to that instance instead of a private copy; the
 *   C library's family (glibc) never gets a private copy.
 */
#ifndef EDGERT_RESOLVE_H
#define EDGERT_RESOLVE_H

#include "internal.h"

#include <stdint.h>
#include <sys/types.h>

/* The path to load for `arg`: a copy of `arg` if it holds a '/', else the
 * library the name resolves to (edgert_find_library). 0 and an
 * edgert__malloc'ed path in *out, or an EDGERT code with the message set
 * (EDGERT_EIO with errno ENOENT when nothing is found). */
int edgert__resolve_load_path(const char *arg, char **out);

/* Called when the first `avail` bytes of the file at `path` failed the ELF
 * checks with `rc`: if they are a linker script, replaces the message with
 * one naming the library the script stands for and returns
 * EDGERT_EFORMAT; else returns rc with the message untouched. */
int edgert__linker_script_error(int rc, const char *path, const unsigned char *b, size_t avail);

/* The loaded object of the process (dynamic linker's list) whose file is
 * the one with device `dev` and inode `ino`: 1, with a new reference to it
 * in *handle (dlopen RTLD_NOLOAD: maps and runs nothing) and its struct
 * link_map * in *linkmap; 0 if the process has no such object. `head`
 * (`nhead` bytes): the file's first bytes, or NULL; when given, only
 * objects whose ELF header and program headers in memory equal them are
 * stat'ed (no system call for the others). Runs no foreign code. */
int edgert__process_instance(dev_t dev, ino_t ino, const unsigned char *head, size_t nhead,
                             void **handle, void **linkmap);

/* 1 if `path` names a library of the C library's family (libc, the dynamic
 * linker, libm, libmvec, libpthread, libdl, librt, libresolv, libutil,
 * libanl) by its file name or that of its real path, else 0. */
int edgert__libc_family(const char *path);

/* A library of the C library's family that the process does not map as
 * the file (dev, ino) at `path`: bound through the system's dlopen of that
 * path (no private copy; the on-disk file was hashed by the caller), after
 * making sure the process has no other object under the same name (a
 * second C library in one process is refused). Then the object dlopen
 * returned must map that very file. 0 with the handle and link map, or an
 * EDGERT code with the message. Runs the library's constructors. */
int edgert__libc_family_open(dev_t dev, ino_t ino, const char *path, void **handle,
                             void **linkmap);

#endif /* EDGERT_RESOLVE_H */
