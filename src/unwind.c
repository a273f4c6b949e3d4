/*
 * unwind.c: a stack walk that is safe inside a signal handler, for the
 * crash guard (guard.c asks whether the C library or the dynamic linker has
 * a frame between a fault and the guarded call: they may hold a lock).
 *
 * It follows the DWARF call frame information (.eh_frame) that compilers
 * emit for every function on x86-64 and AArch64 Linux (unwind tables are on
 * by default there): for each frame, the FDE covering its instruction gives
 * the canonical frame address (CFA) and where the caller's registers and
 * return address were saved. Unlike a scan for return-address-looking
 * words, it never mistakes a stale value in an uninitialised stack slot for
 * a live frame.
 *
 * Invariants:
 * - No lock, no allocation, no stdio. The only call out is glibc's
 *   _dl_find_object (2.35 and later, lock-free and AS-Safe by its manual),
 *   resolved once by edgert__unwind_init before any handler runs; without
 *   it, every walk is LOST at once and the caller falls back.
 * - Every stack read is 8-aligned and inside [stack_lo, stack_hi); every
 *   read of unwind data is inside its object's mapping as _dl_find_object
 *   reports it. A table that does not parse, a DWARF expression (not
 *   implemented), a frame with no FDE, a CFA that does not move up: the walk
 *   stops as LOST, it never guesses.
 * - Not instrumented by AddressSanitizer: it reads other frames' slots,
 *   redzones included, on purpose.
 */
#include "internal.h"
#include "unwind.h"

#include <dlfcn.h>
#include <stddef.h>
#include <ucontext.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UW_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UW_ASAN 1
#endif
#if defined(UW_ASAN)
#define NO_ASAN __attribute__((no_sanitize("address")))
#else
#define NO_ASAN
#endif

#if defined(__x86_64__)
#define UW_SUPPORTED 1
enum { NREG = 17, RA_DEFAULT = 16, SP_REG = 7 };
#elif defined(__aarch64__)
#define UW_SUPPORTED 1
enum { NREG = 32, RA_DEFAULT = 30, SP_REG = 31 };
#else
#define UW_SUPPORTED 0
enum { NREG = 1, RA_DEFAULT = 0, SP_REG = 0 };
#endif

/* At most this many frames: a stack overflow of 8 MiB in 256-byte frames
 * is 32,768 of them. */
#define MAX_FRAMES (1L << 20)
#define MAX_STATES 8 /* DW_CFA_remember_state depth */

/* glibc's struct dl_find_object (2.35), spelled out so that this file
 * builds against older headers; the function is looked up at run time. */
typedef struct dlfo_s {
  unsigned long long flags;
  void *map_start;
  void *map_end;
  void *link_map;
  void *eh_frame;
  unsigned long long reserved[7];
} dlfo_t;
typedef int (*find_object_fn)(void *pc, dlfo_t *out);
static find_object_fn find_object;

int edgert__unwind_init(void) {
#if UW_SUPPORTED
  find_object = (find_object_fn)dlsym(RTLD_DEFAULT, "_dl_find_object");
#endif
  return find_object != NULL;
}

/* ---- reading unwind data, within bounds -------------------------------- */

typedef struct rd_s {
  const uint8_t *p, *end;
  int bad;
} rd_t;

NO_ASAN static uint64_t rd_n(rd_t *r, int n) {
  if (r->bad || r->end - r->p < n) {
    r->bad = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return v;
}

static uint8_t rd_u8(rd_t *r) { return (uint8_t)rd_n(r, 1); }

static uint64_t rd_uleb(rd_t *r) {
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    uint8_t b = rd_u8(r);
    if (r->bad || shift > 63) {
      r->bad = 1;
      return 0;
    }
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return v;
  }
}

static int64_t rd_sleb(rd_t *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  uint8_t b;
  do {
    b = rd_u8(r);
    if (r->bad || shift > 63) {
      r->bad = 1;
      return 0;
    }
    v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  if (shift < 64 && (b & 0x40))
    v |= ~(uint64_t)0 << shift;
  return (int64_t)v;
}

/* A DW_EH_PE-encoded value. Only the encodings compilers emit in .eh_frame
 * are accepted: absolute, pc-relative and data-relative (to `datarel`);
 * DW_EH_PE_indirect values are returned undereferenced (only the
 * personality routine uses it, and nothing here reads that). */
static uintptr_t rd_encoded(rd_t *r, uint8_t enc, uintptr_t datarel) {
  if (enc == 0xff) /* DW_EH_PE_omit */
    return 0;
  uintptr_t field = (uintptr_t)r->p;
  uint64_t v;
  switch (enc & 0x0f) {
  case 0x00: v = rd_n(r, (int)sizeof(uintptr_t)); break;
  case 0x01: v = rd_uleb(r); break;
  case 0x02: v = rd_n(r, 2); break;
  case 0x03: v = rd_n(r, 4); break;
  case 0x04: v = rd_n(r, 8); break;
  case 0x09: v = (uint64_t)rd_sleb(r); break;
  case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_n(r, 2); break;
  case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_n(r, 4); break;
  case 0x0c: v = rd_n(r, 8); break;
  default: r->bad = 1; return 0;
  }
  switch (enc & 0x70) {
  case 0x00: break;
  case 0x10: v += field; break;   /* pcrel */
  case 0x30: v += datarel; break; /* datarel */
  default: r->bad = 1; return 0;
  }
  return (uintptr_t)v;
}

/* ---- finding the FDE of an instruction ---------------------------------- */

typedef struct fde_s {
  uintptr_t lo, hi;          /* the object's mapping: every read stays inside */
  uintptr_t pc_begin, pc_end;
  const uint8_t *insns, *insns_end;     /* the FDE's CFA program */
  const uint8_t *cie_insns, *cie_end;   /* the CIE's initial program */
  uint64_t code_align;
  int64_t data_align;
  unsigned ra_reg;
  int has_z; /* the CIE's augmentation starts with 'z': FDEs carry a length */
} fde_t;

/* One CIE or FDE record at `p`: its contents in [*body, *end). 0, or -1. */
static int record_at(const uint8_t *p, uintptr_t lo, uintptr_t hi, const uint8_t **body,
                     const uint8_t **end) {
  if ((uintptr_t)p < lo || (uintptr_t)p >= hi)
    return -1;
  rd_t r = {p, (const uint8_t *)hi, 0};
  uint64_t len = rd_n(&r, 4);
  if (len == 0xffffffffu)
    len = rd_n(&r, 8);
  if (r.bad || len == 0 || len > (uint64_t)(r.end - r.p))
    return -1;
  *body = r.p;
  *end = r.p + len;
  return 0;
}

/* Parses the CIE at `p` into f (augmentation: z, R, P, L, S, B, G). */
static int parse_cie(const uint8_t *p, fde_t *f, uint8_t *fde_enc) {
  const uint8_t *body, *end;
  if (record_at(p, f->lo, f->hi, &body, &end) < 0)
    return -1;
  rd_t r = {body, end, 0};
  if (rd_n(&r, 4) != 0) /* a CIE's id is 0 in .eh_frame */
    return -1;
  uint8_t version = rd_u8(&r);
  if (r.bad || (version != 1 && version != 3))
    return -1;
  const uint8_t *aug = r.p;
  size_t alen = 0;
  while (r.p + alen < end && aug[alen] != 0)
    alen++;
  if (r.p + alen >= end)
    return -1;
  r.p += alen + 1;
  if (alen >= 2 && aug[0] == 'e' && aug[1] == 'h')
    return -1; /* the pre-2001 form: not produced by any compiler in use */
  f->code_align = rd_uleb(&r);
  f->data_align = rd_sleb(&r);
  f->ra_reg = version == 1 ? rd_u8(&r) : (unsigned)rd_uleb(&r);
  *fde_enc = 0x00;
  f->has_z = alen > 0 && aug[0] == 'z';
  if (f->has_z) {
    uint64_t n = rd_uleb(&r);
    if (r.bad || n > (uint64_t)(end - r.p))
      return -1;
    const uint8_t *after = r.p + n;
    for (size_t i = 1; i < alen && !r.bad; i++) {
      switch (aug[i]) {
      case 'R': *fde_enc = rd_u8(&r); break;
      case 'L': rd_u8(&r); break;
      case 'P': {
        uint8_t enc = rd_u8(&r);
        rd_encoded(&r, enc & 0x7f, 0);
        break;
      }
      case 'S': case 'B': case 'G': break;
      default: r.p = after; i = alen; break; /* unknown: 'z' lets us skip the rest */
      }
    }
    r.p = after;
  } else if (alen > 0) {
    return -1; /* an augmentation we cannot skip */
  }
  if (r.bad || f->code_align == 0)
    return -1;
  f->cie_insns = r.p;
  f->cie_end = end;
  return 0;
}

/* The FDE covering `pc`, through the object's .eh_frame_hdr search table. */
NO_ASAN static int find_fde(uintptr_t pc, fde_t *f) {
  dlfo_t o;
  if (find_object == NULL || find_object((void *)pc, &o) != 0 || o.eh_frame == NULL)
    return -1;
  f->lo = (uintptr_t)o.map_start;
  f->hi = (uintptr_t)o.map_end;
  uintptr_t hdr = (uintptr_t)o.eh_frame;
  if (hdr < f->lo || hdr >= f->hi)
    return -1;
  rd_t r = {(const uint8_t *)hdr, (const uint8_t *)f->hi, 0};
  uint8_t version = rd_u8(&r), ptr_enc = rd_u8(&r), count_enc = rd_u8(&r),
          table_enc = rd_u8(&r);
  if (r.bad || version != 1 || count_enc == 0xff || table_enc != 0x3b)
    return -1; /* 0x3b: datarel sdata4, what every linker writes */
  rd_encoded(&r, ptr_enc, hdr);
  uintptr_t count = rd_encoded(&r, count_enc, hdr);
  if (r.bad || count == 0 || count > (uintptr_t)(r.end - r.p) / 8)
    return -1;
  const uint8_t *table = r.p;
  /* the last entry whose initial location is <= pc */
  uintptr_t lo = 0, hi = count;
  while (hi - lo > 1) {
    uintptr_t mid = lo + (hi - lo) / 2;
    rd_t e = {table + mid * 8, table + mid * 8 + 4, 0};
    uintptr_t loc = hdr + (uintptr_t)(intptr_t)(int32_t)rd_n(&e, 4);
    if (loc <= pc)
      lo = mid;
    else
      hi = mid;
  }
  rd_t e = {table + lo * 8, table + lo * 8 + 8, 0};
  uintptr_t first = hdr + (uintptr_t)(intptr_t)(int32_t)rd_n(&e, 4);
  const uint8_t *fde = (const uint8_t *)(hdr + (uintptr_t)(intptr_t)(int32_t)rd_n(&e, 4));
  if (e.bad || first > pc)
    return -1;
  const uint8_t *body, *end;
  if (record_at(fde, f->lo, f->hi, &body, &end) < 0)
    return -1;
  rd_t fr = {body, end, 0};
  const uint8_t *cie_field = fr.p;
  uint32_t cie_off = (uint32_t)rd_n(&fr, 4);
  if (fr.bad || cie_off == 0)
    return -1;
  uint8_t fde_enc;
  if (parse_cie(cie_field - cie_off, f, &fde_enc) < 0)
    return -1;
  f->pc_begin = rd_encoded(&fr, fde_enc, 0);
  uintptr_t range = rd_encoded(&fr, fde_enc & 0x0f, 0);
  f->pc_end = f->pc_begin + range;
  if (f->has_z) {
    uint64_t n = rd_uleb(&fr);
    if (fr.bad || n > (uint64_t)(end - fr.p))
      return -1;
    fr.p += n;
  }
  if (fr.bad || pc < f->pc_begin || pc >= f->pc_end)
    return -1;
  f->insns = fr.p;
  f->insns_end = end;
  return 0;
}

/* ---- running the CFA program ------------------------------------------- */

enum { R_SAME = 0, R_UNDEF, R_OFFSET, R_VAL_OFFSET, R_REG, R_UNKNOWN };

typedef struct row_s {
  int cfa_reg;
  int cfa_ok; /* 0 after a DW_CFA_def_cfa_expression */
  intptr_t cfa_off;
  uint8_t how[NREG];
  intptr_t val[NREG];
} row_t;

static void set_rule(row_t *row, uint64_t reg, int how, intptr_t val) {
  if (reg < NREG) {
    row->how[reg] = (uint8_t)how;
    row->val[reg] = val;
  }
}

/*
 * Runs the program in [p, end) on `row` until the location passes
 * `target`; `initial` is the row after the CIE's program (for
 * DW_CFA_restore), NULL while running that program. 0, or -1 if it cannot.
 */
static int run_cfa(const uint8_t *p, const uint8_t *end, const fde_t *f, row_t *row,
                   const row_t *initial, uintptr_t target) {
  row_t saved[MAX_STATES];
  int depth = 0;
  uintptr_t loc = f->pc_begin;
  rd_t r = {p, end, 0};
  while (r.p < r.end && !r.bad) {
    uint8_t op = rd_u8(&r);
    uint8_t low = op & 0x3f;
    uint64_t reg, n;
    switch (op & 0xc0) {
    case 0x40: /* advance_loc */
      loc += low * f->code_align;
      if (initial != NULL && loc > target)
        return 0;
      continue;
    case 0x80: /* offset */
      n = rd_uleb(&r);
      set_rule(row, low, R_OFFSET, (intptr_t)n * (intptr_t)f->data_align);
      continue;
    case 0xc0: /* restore */
      if (initial == NULL)
        return -1;
      if (low < NREG) {
        row->how[low] = initial->how[low];
        row->val[low] = initial->val[low];
      }
      continue;
    default:
      break;
    }
    switch (op) {
    case 0x00: /* nop */
      break;
    case 0x01: /* set_loc */
      loc = rd_encoded(&r, 0x00, 0);
      if (initial != NULL && loc > target)
        return 0;
      break;
    case 0x02: case 0x03: case 0x04: /* advance_loc1, 2, 4 */
      loc += rd_n(&r, op == 0x02 ? 1 : op == 0x03 ? 2 : 4) * f->code_align;
      if (initial != NULL && loc > target)
        return 0;
      break;
    case 0x05: /* offset_extended */
      reg = rd_uleb(&r);
      n = rd_uleb(&r);
      set_rule(row, reg, R_OFFSET, (intptr_t)n * (intptr_t)f->data_align);
      break;
    case 0x06: /* restore_extended */
      reg = rd_uleb(&r);
      if (initial == NULL)
        return -1;
      if (reg < NREG) {
        row->how[reg] = initial->how[reg];
        row->val[reg] = initial->val[reg];
      }
      break;
    case 0x07: /* undefined */
      set_rule(row, rd_uleb(&r), R_UNDEF, 0);
      break;
    case 0x08: /* same_value */
      set_rule(row, rd_uleb(&r), R_SAME, 0);
      break;
    case 0x09: /* register */
      reg = rd_uleb(&r);
      n = rd_uleb(&r);
      set_rule(row, reg, n < NREG ? R_REG : R_UNKNOWN, (intptr_t)n);
      break;
    case 0x0a: /* remember_state */
      if (depth == MAX_STATES)
        return -1;
      saved[depth++] = *row;
      break;
    case 0x0b: /* restore_state */
      if (depth == 0)
        return -1;
      *row = saved[--depth];
      break;
    case 0x0c: /* def_cfa */
      row->cfa_reg = (int)rd_uleb(&r);
      row->cfa_off = (intptr_t)rd_uleb(&r);
      row->cfa_ok = 1;
      break;
    case 0x0d: /* def_cfa_register */
      row->cfa_reg = (int)rd_uleb(&r);
      break;
    case 0x0e: /* def_cfa_offset */
      row->cfa_off = (intptr_t)rd_uleb(&r);
      break;
    case 0x0f: /* def_cfa_expression */
      n = rd_uleb(&r);
      if (n > (uint64_t)(r.end - r.p))
        return -1;
      r.p += n;
      row->cfa_ok = 0;
      break;
    case 0x10: /* expression */
    case 0x16: /* val_expression */
      reg = rd_uleb(&r);
      n = rd_uleb(&r);
      if (n > (uint64_t)(r.end - r.p))
        return -1;
      r.p += n;
      set_rule(row, reg, R_UNKNOWN, 0);
      break;
    case 0x11: /* offset_extended_sf */
      reg = rd_uleb(&r);
      set_rule(row, reg, R_OFFSET, (intptr_t)rd_sleb(&r) * (intptr_t)f->data_align);
      break;
    case 0x12: /* def_cfa_sf */
      row->cfa_reg = (int)rd_uleb(&r);
      row->cfa_off = (intptr_t)rd_sleb(&r) * (intptr_t)f->data_align;
      row->cfa_ok = 1;
      break;
    case 0x13: /* def_cfa_offset_sf */
      row->cfa_off = (intptr_t)rd_sleb(&r) * (intptr_t)f->data_align;
      break;
    case 0x14: /* val_offset */
      reg = rd_uleb(&r);
      set_rule(row, reg, R_VAL_OFFSET, (intptr_t)rd_uleb(&r) * (intptr_t)f->data_align);
      break;
    case 0x15: /* val_offset_sf */
      reg = rd_uleb(&r);
      set_rule(row, reg, R_VAL_OFFSET, (intptr_t)rd_sleb(&r) * (intptr_t)f->data_align);
      break;
    case 0x2d: /* AArch64 negate_ra_state (pointer authentication): the
                * return address is stripped below anyway */
      break;
    case 0x2e: /* GNU_args_size */
      rd_uleb(&r);
      break;
    case 0x2f: /* GNU_negative_offset_extended */
      reg = rd_uleb(&r);
      set_rule(row, reg, R_OFFSET, -(intptr_t)rd_uleb(&r) * (intptr_t)f->data_align);
      break;
    default:
      return -1;
    }
  }
  return r.bad ? -1 : 0;
}

/* ---- the walk ------------------------------------------------------------ */

typedef struct regs_s {
  uintptr_t r[NREG];
  uint64_t known; /* bit i: r[i] is known */
  uintptr_t pc;
} regs_t;

static void regs_from(const ucontext_t *uc, regs_t *g) {
  g->known = 0;
#if defined(__x86_64__)
  /* DWARF order: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 */
  static const int map[16] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI,
                              REG_RBP, REG_RSP, REG_R8,  REG_R9,  REG_R10, REG_R11,
                              REG_R12, REG_R13, REG_R14, REG_R15};
  for (int i = 0; i < 16; i++)
    g->r[i] = (uintptr_t)uc->uc_mcontext.gregs[map[i]];
  g->known = 0xffff;
  g->pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
  for (int i = 0; i < 31; i++)
    g->r[i] = (uintptr_t)uc->uc_mcontext.regs[i];
  g->r[31] = (uintptr_t)uc->uc_mcontext.sp;
  g->known = 0xffffffffu;
  g->pc = (uintptr_t)uc->uc_mcontext.pc;
#else
  (void)uc;
  g->pc = 0;
#endif
}

/* A return address without its pointer-authentication code (AArch64). */
static uintptr_t strip_pac(uintptr_t ra) {
#if defined(__aarch64__)
  return ra & (((uintptr_t)1 << 48) - 1);
#else
  return ra;
#endif
}

NO_ASAN static int read_stack(uintptr_t addr, uintptr_t lo, uintptr_t hi, uintptr_t *out) {
  if ((addr & (sizeof(uintptr_t) - 1)) != 0 || addr < lo || addr > hi - sizeof(uintptr_t))
    return -1;
  *out = *(const volatile uintptr_t *)addr;
  return 0;
}

/* The rule row of the last instruction looked up: a recursion (a stack
 * overflow: thousands of frames at the same return address) reuses it. */
typedef struct memo_s {
  uintptr_t where; /* 0: empty */
  unsigned ra_reg;
  row_t row;
} memo_t;

/* The rule row for the instruction at `where`: 0, or -1. */
static int row_for(uintptr_t where, memo_t *m) {
  if (m->where == where && where != 0)
    return 0;
  m->where = 0;
  fde_t f;
  if (find_fde(where, &f) < 0)
    return -1;
  row_t initial;
  initial.cfa_reg = SP_REG;
  initial.cfa_off = 0;
  initial.cfa_ok = 0;
  for (int i = 0; i < NREG; i++) {
    initial.how[i] = R_SAME;
    initial.val[i] = 0;
  }
  if (run_cfa(f.cie_insns, f.cie_end, &f, &initial, NULL, where) < 0)
    return -1;
  m->row = initial;
  if (run_cfa(f.insns, f.insns_end, &f, &m->row, &initial, where) < 0)
    return -1;
  m->ra_reg = f.ra_reg;
  m->where = where;
  return 0;
}

/* One frame up: 1 stepped, 0 the outermost frame (no return address), -1 lost. */
static int step(regs_t *g, int first, uintptr_t lo, uintptr_t hi, memo_t *m) {
  /* a return address points after its call: the call's row is at pc - 1 */
  uintptr_t where = first ? g->pc : g->pc - 1;
  if (row_for(where, m) < 0)
    return -1;
  const row_t row = m->row;
  struct {
    unsigned ra_reg;
  } f = {m->ra_reg};
  if (!row.cfa_ok || row.cfa_reg < 0 || row.cfa_reg >= NREG ||
      !(g->known & ((uint64_t)1 << row.cfa_reg)) || f.ra_reg >= NREG)
    return -1;
  uintptr_t cfa = g->r[row.cfa_reg] + (uintptr_t)row.cfa_off;
  regs_t next = *g;
  for (int i = 0; i < NREG; i++) {
    uintptr_t v;
    switch (row.how[i]) {
    case R_SAME:
      break;
    case R_OFFSET:
      if (read_stack(cfa + (uintptr_t)row.val[i], lo, hi, &v) < 0)
        return -1;
      next.r[i] = v;
      next.known |= (uint64_t)1 << i;
      break;
    case R_VAL_OFFSET:
      next.r[i] = cfa + (uintptr_t)row.val[i];
      next.known |= (uint64_t)1 << i;
      break;
    case R_REG:
      next.r[i] = g->r[row.val[i]];
      if (!(g->known & ((uint64_t)1 << row.val[i])))
        next.known &= ~((uint64_t)1 << i);
      break;
    default: /* undefined, or an expression we do not evaluate */
      next.known &= ~((uint64_t)1 << i);
      break;
    }
  }
  if (row.how[f.ra_reg] == R_UNDEF)
    return 0; /* the outermost frame */
  if (!(next.known & ((uint64_t)1 << f.ra_reg)))
    return -1;
  uintptr_t sp = g->r[SP_REG];
  if (cfa <= sp && !first)
    return -1; /* no progress */
  next.pc = strip_pac(next.r[f.ra_reg]);
  next.r[SP_REG] = cfa;
  next.known |= (uint64_t)1 << SP_REG;
  *g = next;
  return 1;
}

int edgert__unwind(const void *ucontext, uintptr_t stack_lo, uintptr_t stack_hi,
                   uintptr_t top, edgert__unwind_visit_t visit, void *ud,
                   uintptr_t *lost_sp) {
  regs_t g;
  memo_t memo;
  memo.where = 0;
  regs_from((const ucontext_t *)ucontext, &g);
  *lost_sp = g.r[SP_REG];
  if (!UW_SUPPORTED || find_object == NULL || stack_hi <= stack_lo)
    return EDGERT__UNWIND_LOST;
  for (long n = 0; n < MAX_FRAMES; n++) {
    if (g.r[SP_REG] > top)
      return EDGERT__UNWIND_TOP;
    if (visit(ud, g.pc, g.r[SP_REG]))
      return EDGERT__UNWIND_STOPPED;
    *lost_sp = g.r[SP_REG];
    int s = step(&g, n == 0, stack_lo, stack_hi, &memo);
    if (s == 0)
      return EDGERT__UNWIND_TOP;
    if (s < 0)
      return EDGERT__UNWIND_LOST;
  }
  return EDGERT__UNWIND_LOST;
}
