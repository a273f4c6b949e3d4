/*
 * inspect.c: reading a module's dynamic section without loading it, to
 * report its interposable internal references (edgert_interposable_calls).
 *
 * Invariants:
 * - The file is untrusted input. It is read with pread into buffers of the
 *   exact sizes its headers claim, and every size, offset and index is
 *   checked against the file and the buffer before use (with overflow-safe
 *   arithmetic): the program header table against the file (the loader's
 *   ELF header checks, edgert__check_elf), the dynamic segment, the
 *   relocation tables and the string table against the PT_LOAD segment
 *   that holds them, each relocation's symbol index against the symbol
 *   table's readable extent, each name against the string table. A module
 *   that breaks any of these is EDGERT_EFORMAT naming what is wrong.
 * - Nothing is mapped and no code of the file runs.
 * - What counts as interposable: a relocation with a symbol, against a
 *   symbol the module defines (st_shndx != SHN_UNDEF) with default
 *   visibility and global, weak or unique binding. The dynamic linker
 *   resolves such a relocation through the global scope first, so any
 *   earlier definition of the name wins over the module's own. Relocations
 *   in DT_JMPREL are PLT calls; the others (DT_RELA, DT_REL) are GOT loads or
 *   data words holding the address. Protected and hidden symbols, and
 *   relative relocations, bind inside the module and are not reported.
 */
#include "loader_internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The most entries of any one table we read (a sanity bound far above any
 * real module, so a malformed count cannot ask for an absurd buffer). */
#define MAX_ENTRIES ((uint64_t)1 << 26)

typedef struct {
  int fd;
  uint64_t size; /* of the file */
  const char *path;
  Elf64_Phdr *ph;
  unsigned nph;
} elf_t;

static int bad(const elf_t *e, const char *what) {
  return edgert__error(EDGERT_EFORMAT, "%s: malformed dynamic section: %s", e->path, what);
}

/* pread exactly n bytes at off (already checked to lie in the file). */
static int read_at(const elf_t *e, uint64_t off, void *buf, size_t n) {
  size_t have = 0;
  while (have < n) {
    ssize_t k = pread(e->fd, (char *)buf + have, n - have, (off_t)(off + have));
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      int err = errno;
      return edgert__error(EDGERT_EIO, "reading %s failed: %s", e->path, strerror(err));
    }
    if (k == 0)
      return edgert__error(EDGERT_EIO, "%s shrank while it was being read", e->path);
    have += (size_t)k;
  }
  return 0;
}

/* A new buffer holding n bytes at off. */
static int read_new(const elf_t *e, uint64_t off, uint64_t n, void **out) {
  if (off > e->size || n > e->size - off)
    return bad(e, "a table lies outside the file");
  void *b = edgert__malloc(n ? (size_t)n : 1);
  if (b == NULL)
    return edgert__error(EDGERT_ENOMEM, "reading %s: out of memory", e->path);
  int rc = read_at(e, off, b, (size_t)n);
  if (rc != 0) {
    edgert__free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* The file offset of the virtual address range [va, va + n), which must lie
 * in the file-backed part of one PT_LOAD segment; *room (may be NULL) gets
 * the bytes from va to the end of that part. 0 or EDGERT_EFORMAT. */
static int va_to_off(const elf_t *e, uint64_t va, uint64_t n, uint64_t *off, uint64_t *room,
                     const char *what) {
  for (unsigned i = 0; i < e->nph; i++) {
    const Elf64_Phdr *p = &e->ph[i];
    if (p->p_type != PT_LOAD || va < p->p_vaddr)
      continue;
    uint64_t into = va - p->p_vaddr;
    if (into > p->p_filesz || n > p->p_filesz - into)
      continue;
    if (p->p_offset > e->size || p->p_filesz > e->size - p->p_offset)
      return bad(e, "a PT_LOAD segment lies outside the file");
    *off = p->p_offset + into;
    if (room != NULL)
      *room = p->p_filesz - into;
    return 0;
  }
  return edgert__error(EDGERT_EFORMAT,
                       "%s: malformed dynamic section: the %s (address 0x%llx, %llu bytes) is "
                       "not inside the file's loaded segments",
                       e->path, what, (unsigned long long)va, (unsigned long long)n);
}

typedef struct {
  uint64_t addr, size, ent;
  int present;
} table_t;

/* Marks in kinds[] the symbols that the relocations of table `t` refer to.
 * rela: entries are Elf64_Rela (else Elf64_Rel). */
static int scan_relocs(const elf_t *e, const table_t *t, int rela, unsigned how,
                       uint64_t nsyms, unsigned char **kinds, uint64_t *nkinds,
                       const char *what) {
  if (!t->present || t->size == 0)
    return 0;
  uint64_t ent = rela ? sizeof(Elf64_Rela) : sizeof(Elf64_Rel);
  if (t->ent != 0 && t->ent != ent)
    return edgert__error(EDGERT_EFORMAT,
                         "%s: malformed dynamic section: %s entries are %llu bytes, not %llu",
                         e->path, what, (unsigned long long)t->ent, (unsigned long long)ent);
  if (t->size % ent != 0 || t->size / ent > MAX_ENTRIES)
    return edgert__error(EDGERT_EFORMAT,
                         "%s: malformed dynamic section: %s size %llu is not a whole number "
                         "of entries (or too many)",
                         e->path, what, (unsigned long long)t->size);
  uint64_t off;
  int rc = va_to_off(e, t->addr, t->size, &off, NULL, what);
  if (rc != 0)
    return rc;
  unsigned char *buf = NULL;
  if ((rc = read_new(e, off, t->size, (void **)&buf)) != 0)
    return rc;
  for (uint64_t i = 0; i < t->size / ent; i++) {
    uint64_t info;
    if (rela) {
      Elf64_Rela r;
      memcpy(&r, buf + i * ent, sizeof r);
      info = r.r_info;
    } else {
      Elf64_Rel r;
      memcpy(&r, buf + i * ent, sizeof r);
      info = r.r_info;
    }
    uint64_t sym = ELF64_R_SYM(info);
    if (sym == 0)
      continue;
    if (sym >= nsyms) {
      edgert__free(buf);
      return bad(e, "a relocation refers to a symbol beyond the symbol table");
    }
    if (sym >= *nkinds) { /* grow the per-symbol marks to cover it */
      uint64_t n = *nkinds ? *nkinds : 64;
      while (n <= sym)
        n *= 2;
      unsigned char *grown = edgert__realloc(*kinds, (size_t)n);
      if (grown == NULL) {
        edgert__free(buf);
        return edgert__error(EDGERT_ENOMEM, "reading %s: out of memory", e->path);
      }
      memset(grown + *nkinds, 0, (size_t)(n - *nkinds));
      *kinds = grown;
      *nkinds = n;
    }
    (*kinds)[sym] |= (unsigned char)how;
  }
  edgert__free(buf);
  return 0;
}

typedef struct {
  uint64_t symtab, syment, strtab, strsz;
  int have_symtab, have_strtab, have_strsz;
  uint64_t pltrel; /* DT_RELA or DT_REL */
  table_t jmprel, rela, rel;
} dyn_t;

/* The ELF header (edgert__check_elf) and the program header table of e
 * (fd, size and path set) into e->ph and e->nph. */
static int read_headers(elf_t *e) {
  Elf64_Ehdr eh;
  size_t first = e->size < sizeof eh ? (size_t)e->size : sizeof eh;
  unsigned char hdr[sizeof eh];
  int rc;
  if ((rc = read_at(e, 0, hdr, first)) != 0 ||
      (rc = edgert__check_elf(hdr, first, (size_t)e->size, e->path)) != 0)
    return rc;
  memcpy(&eh, hdr, sizeof eh);
  /* check_elf: e_phentsize is sizeof(Elf64_Phdr), the table is in the file. */
  if ((rc = read_new(e, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr),
                     (void **)&e->ph)) != 0)
    return rc;
  e->nph = eh.e_phnum;
  return 0;
}

static int read_dynamic(const elf_t *e, dyn_t *d) {
  const Elf64_Phdr *dp = NULL;
  for (unsigned i = 0; i < e->nph; i++)
    if (e->ph[i].p_type == PT_DYNAMIC) {
      dp = &e->ph[i];
      break;
    }
  if (dp == NULL)
    return edgert__error(EDGERT_EFORMAT,
                         "%s has no dynamic section (PT_DYNAMIC): not a loadable shared object",
                         e->path);
  if (dp->p_filesz % sizeof(Elf64_Dyn) != 0 || dp->p_filesz / sizeof(Elf64_Dyn) > MAX_ENTRIES)
    return bad(e, "its size is not a whole number of entries");
  Elf64_Dyn *dyn = NULL;
  int rc = read_new(e, dp->p_offset, dp->p_filesz, (void **)&dyn);
  if (rc != 0)
    return rc;
  memset(d, 0, sizeof *d);
  size_t n = (size_t)(dp->p_filesz / sizeof(Elf64_Dyn));
  for (size_t i = 0; i < n && dyn[i].d_tag != DT_NULL; i++) {
    uint64_t v = dyn[i].d_un.d_val;
    switch (dyn[i].d_tag) {
    case DT_SYMTAB: d->symtab = v; d->have_symtab = 1; break;
    case DT_SYMENT: d->syment = v; break;
    case DT_STRTAB: d->strtab = v; d->have_strtab = 1; break;
    case DT_STRSZ: d->strsz = v; d->have_strsz = 1; break;
    case DT_PLTREL: d->pltrel = v; break;
    case DT_JMPREL: d->jmprel.addr = v; d->jmprel.present = 1; break;
    case DT_PLTRELSZ: d->jmprel.size = v; break;
    case DT_RELA: d->rela.addr = v; d->rela.present = 1; break;
    case DT_RELASZ: d->rela.size = v; break;
    case DT_RELAENT: d->rela.ent = v; break;
    case DT_REL: d->rel.addr = v; d->rel.present = 1; break;
    case DT_RELSZ: d->rel.size = v; break;
    case DT_RELENT: d->rel.ent = v; break;
    default: break;
    }
  }
  edgert__free(dyn);
  if (d->jmprel.present && d->pltrel != DT_RELA && d->pltrel != DT_REL)
    return bad(e, "DT_PLTREL is neither DT_RELA nor DT_REL");
  if (d->have_symtab && d->syment != 0 && d->syment != sizeof(Elf64_Sym))
    return bad(e, "DT_SYMENT is not the size of an Elf64_Sym");
  return 0;
}

int edgert_interposable_calls(const char *path, edgert_interposable_fn fn, void *ud) {
  if (path == NULL || fn == NULL)
    return edgert__error(EDGERT_EINVAL, "edgert_interposable_calls: path and fn must not be NULL");
  elf_t e = {-1, 0, path, NULL, 0};
  e.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (e.fd < 0) {
    int err = errno;
    return edgert__error(EDGERT_EIO, "cannot open module %s: %s", path, strerror(err));
  }
  unsigned char *kinds = NULL, *strtab = NULL, *syms = NULL;
  uint64_t nkinds = 0;
  int rc = 0;
  struct stat st;
  if (fstat(e.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = edgert__error(EDGERT_EIO, "%s is not a regular file that can be read", path);
    goto out;
  }
  e.size = (uint64_t)st.st_size;
  if (e.size > EDGERT_MODULE_MAX_SIZE_DEFAULT) {
    rc = edgert__error(EDGERT_ELIMIT, "%s is %llu bytes, more than the module size limit of %zu",
                       path, (unsigned long long)e.size, EDGERT_MODULE_MAX_SIZE_DEFAULT);
    goto out;
  }
  if ((rc = read_headers(&e)) != 0)
    goto out;
  dyn_t d;
  if ((rc = read_dynamic(&e, &d)) != 0)
    goto out;
  /* The symbol table's size is not in the dynamic section: what the file
   * holds from its start to the end of its segment bounds the indices. */
  uint64_t symoff = 0, room = 0, stroff;
  if (d.have_symtab &&
      (rc = va_to_off(&e, d.symtab, sizeof(Elf64_Sym), &symoff, &room, "symbol table")) != 0)
    goto out;
  uint64_t nsyms = room / sizeof(Elf64_Sym);
  if ((rc = scan_relocs(&e, &d.jmprel, d.pltrel == DT_RELA, EDGERT_INTERPOSE_CALL, nsyms,
                        &kinds, &nkinds, "PLT relocation table (DT_JMPREL)")) != 0 ||
      (rc = scan_relocs(&e, &d.rela, 1, EDGERT_INTERPOSE_REF, nsyms, &kinds, &nkinds,
                        "relocation table (DT_RELA)")) != 0 ||
      (rc = scan_relocs(&e, &d.rel, 0, EDGERT_INTERPOSE_REF, nsyms, &kinds, &nkinds,
                        "relocation table (DT_REL)")) != 0)
    goto out;
  uint64_t last = 0; /* highest symbol index referred to, + 1 */
  for (uint64_t i = 0; i < nkinds; i++)
    if (kinds[i])
      last = i + 1;
  if (last == 0)
    goto out; /* no relocation names a symbol */
  if (!d.have_strtab || !d.have_strsz) {
    rc = bad(&e, "relocations name symbols but DT_STRTAB or DT_STRSZ is missing");
    goto out;
  }
  if ((rc = va_to_off(&e, d.strtab, d.strsz, &stroff, NULL, "string table")) != 0)
    goto out;
  if ((rc = read_new(&e, symoff, last * sizeof(Elf64_Sym), (void **)&syms)) != 0 ||
      (rc = read_new(&e, stroff, d.strsz, (void **)&strtab)) != 0)
    goto out;
  for (uint64_t i = 1; i < last; i++) {
    if (!kinds[i])
      continue;
    Elf64_Sym s;
    memcpy(&s, syms + i * sizeof s, sizeof s);
    unsigned bind = ELF64_ST_BIND(s.st_info), type = ELF64_ST_TYPE(s.st_info);
    if (s.st_shndx == SHN_UNDEF || ELF64_ST_VISIBILITY(s.st_other) != STV_DEFAULT ||
        (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) ||
        type == STT_SECTION || type == STT_FILE)
      continue;
    if (s.st_name >= d.strsz || memchr(strtab + s.st_name, '\0', d.strsz - s.st_name) == NULL) {
      rc = bad(&e, "a symbol's name lies outside the string table");
      goto out;
    }
    const char *name = (const char *)strtab + s.st_name;
    if (name[0] == '\0')
      continue;
    if ((rc = fn(ud, name, kinds[i])) != 0)
      goto out;
  }
out:
  edgert__free(kinds);
  edgert__free(syms);
  edgert__free(strtab);
  edgert__free(e.ph);
  close(e.fd);
  return rc;
}

/* ---- the names of the dynamic section (deps.c) ---------------------------- */

void edgert__dyn_names_free(edgert__dyn_names_t *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->nneeded; i++)
    edgert__free(d->needed[i]);
  edgert__free(d->needed);
  edgert__free(d->soname);
  edgert__free(d->runpath);
  edgert__free(d->rpath);
  memset(d, 0, sizeof *d);
}

/* A copy of the NUL-terminated string at `off` of the string table. */
static int dyn_string(const elf_t *e, const char *strtab, uint64_t strsz, uint64_t off,
                      char **out, const char *what) {
  if (off >= strsz || memchr(strtab + off, '\0', (size_t)(strsz - off)) == NULL)
    return edgert__error(EDGERT_EFORMAT,
                         "%s: malformed dynamic section: the %s lies outside the string table",
                         e->path, what);
  *out = edgert__strdup(strtab + off);
  return *out == NULL ? edgert__error(EDGERT_ENOMEM, "reading %s: out of memory", e->path) : 0;
}

int edgert__dyn_names(int fd, const char *path, edgert__dyn_names_t *out) {
  memset(out, 0, sizeof *out);
  elf_t e = {fd, 0, path, NULL, 0};
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return edgert__error(EDGERT_EIO, "%s is not a regular file that can be read", path);
  e.size = (uint64_t)st.st_size;
  Elf64_Dyn *dyn = NULL;
  char *strtab = NULL;
  uint64_t *offs = NULL;
  int rc;
  if ((rc = read_headers(&e)) != 0) {
    edgert__free(e.ph);
    return rc;
  }
  const Elf64_Phdr *dp = NULL;
  for (unsigned i = 0; i < e.nph; i++)
    if (e.ph[i].p_type == PT_DYNAMIC) {
      dp = &e.ph[i];
      break;
    }
  if (dp == NULL) { /* no dynamic section: no dependencies (ld.so refuses it later) */
    edgert__free(e.ph);
    return 0;
  }
  if (dp->p_filesz % sizeof(Elf64_Dyn) != 0 || dp->p_filesz / sizeof(Elf64_Dyn) > MAX_ENTRIES) {
    rc = bad(&e, "its size is not a whole number of entries");
    goto out;
  }
  if ((rc = read_new(&e, dp->p_offset, dp->p_filesz, (void **)&dyn)) != 0)
    goto out;
  size_t n = (size_t)(dp->p_filesz / sizeof(Elf64_Dyn)), nneeded = 0;
  uint64_t strtab_va = 0, strsz = 0, soname = 0, runpath = 0, rpath = 0;
  int have_strtab = 0, have_strsz = 0, have_soname = 0, have_runpath = 0, have_rpath = 0;
  offs = edgert__malloc((n ? n : 1) * sizeof *offs);
  if (offs == NULL) {
    rc = edgert__error(EDGERT_ENOMEM, "reading %s: out of memory", path);
    goto out;
  }
  for (size_t i = 0; i < n && dyn[i].d_tag != DT_NULL; i++) {
    uint64_t v = dyn[i].d_un.d_val;
    switch (dyn[i].d_tag) {
    case DT_NEEDED: offs[nneeded++] = v; break;
    case DT_STRTAB: strtab_va = v; have_strtab = 1; break;
    case DT_STRSZ: strsz = v; have_strsz = 1; break;
    case DT_SONAME: soname = v; have_soname = 1; break;
    case DT_RUNPATH: runpath = v; have_runpath = 1; break;
    case DT_RPATH: rpath = v; have_rpath = 1; break;
    default: break;
    }
  }
  if (nneeded == 0 && !have_soname && !have_runpath && !have_rpath)
    goto out;
  if (!have_strtab || !have_strsz || strsz == 0) {
    rc = bad(&e, "it names libraries or paths but DT_STRTAB or DT_STRSZ is missing");
    goto out;
  }
  uint64_t stroff;
  if ((rc = va_to_off(&e, strtab_va, strsz, &stroff, NULL, "string table")) != 0 ||
      (rc = read_new(&e, stroff, strsz, (void **)&strtab)) != 0)
    goto out;
  out->needed = edgert__calloc(nneeded ? nneeded : 1, sizeof *out->needed);
  if (out->needed == NULL) {
    rc = edgert__error(EDGERT_ENOMEM, "reading %s: out of memory", path);
    goto out;
  }
  for (size_t i = 0; i < nneeded && rc == 0; i++) {
    rc = dyn_string(&e, strtab, strsz, offs[i], &out->needed[i], "DT_NEEDED name");
    if (rc == 0)
      out->nneeded++;
  }
  if (rc == 0 && have_soname)
    rc = dyn_string(&e, strtab, strsz, soname, &out->soname, "DT_SONAME");
  if (rc == 0 && have_runpath)
    rc = dyn_string(&e, strtab, strsz, runpath, &out->runpath, "DT_RUNPATH");
  if (rc == 0 && have_rpath)
    rc = dyn_string(&e, strtab, strsz, rpath, &out->rpath, "DT_RPATH");
out:
  if (rc != 0)
    edgert__dyn_names_free(out);
  edgert__free(offs);
  edgert__free(strtab);
  edgert__free(dyn);
  edgert__free(e.ph);
  return rc;
}

/* ---- a function symbol of the verified bytes (isolated binds) ------------- */

int edgert__dyn_find_func(int fd, const char *path, const char *name, uint64_t *value) {
  elf_t e = {fd, 0, path, NULL, 0};
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return edgert__error(EDGERT_EIO, "%s is not a regular file that can be read", path);
  e.size = (uint64_t)st.st_size;
  unsigned char *syms = NULL;
  char *strtab = NULL;
  int rc;
  if ((rc = read_headers(&e)) != 0) {
    edgert__free(e.ph);
    return rc;
  }
  dyn_t d;
  if ((rc = read_dynamic(&e, &d)) != 0)
    goto out;
  if (!d.have_symtab || !d.have_strtab || !d.have_strsz) {
    rc = 0; /* no dynamic symbols: nothing is defined */
    goto out;
  }
  /* The table's extent: to the end of its segment's file part, and before
   * the string table when that follows it (the linkers' layout). */
  uint64_t symoff = 0, room = 0, stroff;
  if ((rc = va_to_off(&e, d.symtab, sizeof(Elf64_Sym), &symoff, &room, "symbol table")) != 0 ||
      (rc = va_to_off(&e, d.strtab, d.strsz, &stroff, NULL, "string table")) != 0)
    goto out;
  if (d.strtab > d.symtab && d.strtab - d.symtab < room)
    room = d.strtab - d.symtab;
  uint64_t nsyms = room / sizeof(Elf64_Sym);
  if (nsyms > MAX_ENTRIES)
    nsyms = MAX_ENTRIES;
  if ((rc = read_new(&e, symoff, nsyms * sizeof(Elf64_Sym), (void **)&syms)) != 0 ||
      (rc = read_new(&e, stroff, d.strsz, (void **)&strtab)) != 0)
    goto out;
  size_t nlen = strlen(name);
  for (uint64_t i = 1; i < nsyms; i++) {
    Elf64_Sym s;
    memcpy(&s, syms + i * sizeof s, sizeof s);
    if (s.st_shndx == SHN_UNDEF || s.st_name >= d.strsz || d.strsz - s.st_name <= nlen ||
        memcmp(strtab + s.st_name, name, nlen + 1) != 0)
      continue;
    unsigned type = ELF64_ST_TYPE(s.st_info), bind = ELF64_ST_BIND(s.st_info);
    if (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE)
      continue;
    if (type != STT_FUNC && type != STT_GNU_IFUNC) {
      rc = edgert__not_a_function(name, path, type == STT_OBJECT);
      goto out;
    }
    for (unsigned k = 0; k < e.nph; k++) {
      const Elf64_Phdr *p = &e.ph[k];
      if (p->p_type == PT_LOAD && (p->p_flags & PF_X) && s.st_value >= p->p_vaddr &&
          s.st_value - p->p_vaddr < p->p_memsz) {
        *value = s.st_value;
        rc = 1;
        goto out;
      }
    }
    rc = edgert__error(EDGERT_ENOTFOUND, "'%s' in module %s is not in an executable segment",
                       name, path);
    goto out;
  }
  rc = 0;
out:
  edgert__free(syms);
  edgert__free(strtab);
  edgert__free(e.ph);
  return rc;
}
