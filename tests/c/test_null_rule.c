/*
 * test_null_rule: the one NULL rule of the public headers, for every entry
 * point of the core except the nexus API (edgert_nexus_* / edgert_kernel_*,
 * whose helper states it there): passing NULL where a pointer is required
 * returns EDGERT_EINVAL with a message (a function returning a pointer
 * returns NULL, a count or size 0, a flag 0); *_free and *_release of NULL
 * do nothing, as do void functions given a NULL handle.
 *
 * Each call runs in a forked child, so a call that crashes (what several did
 * before the rule was kept everywhere) fails its own line and the run goes
 * on to list every other one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgert.h"

#define FX(name) EDGERT_FIXTURE_DIR "/lib" name ".so"

/* Real objects for the arguments that are not the NULL under test. */
#define MANI "{\"schema_version\": 1, \"modules\": []}"
static edgert_dict_t *D;
static edgert_list_t *L;
static edgert_module_t *M;
static edgert_func_t *F;
static edgert_manifest_t *MF;
static const edgert_type_t *T;
static edgert_contract_t C;
static int64_t K = 1;
static double V = 2.0;

typedef long long (*probe_t)(void);
typedef struct {
  const char *what;
  probe_t fn;
  long long want;
  int einval; /* the message must be set */
} nullcase_t;

#define WANT_EINVAL(id, expr)                                                              \
  static long long id(void) { return (long long)(expr); }
#define WANT_VALUE(id, expr)                                                               \
  static long long id(void) { return (long long)(intptr_t)(expr); }
#define WANT_NOOP(id, stmt)                                                                \
  static long long id(void) {                                                              \
    stmt;                                                                                  \
    return 0;                                                                              \
  }

/* ---- common, abi, types ---- */
WANT_VALUE(c_alloc, edgert_set_allocator(NULL)) /* documented: NULL restores malloc */
WANT_EINVAL(a_parse_name, edgert_abi_type_parse(NULL, 0, &(edgert_abi_type_t){0}))
WANT_EINVAL(a_parse_out, edgert_abi_type_parse("c_int", 0, NULL))
WANT_EINVAL(a_name_t, edgert_abi_type_name(NULL, (char[8]){0}, 8))
WANT_EINVAL(a_name_buf, edgert_abi_type_name(&C.ret, NULL, 8))
WANT_VALUE(a_size, edgert_abi_type_size(NULL))
WANT_EINVAL(a_cinit_c, edgert_contract_init(NULL, "f", NULL, 0, NULL, NULL, 0))
WANT_EINVAL(a_cinit_name, edgert_contract_init(&(edgert_contract_t){0}, NULL, NULL, 0, NULL, NULL, 0))
WANT_EINVAL(a_cinit_args, edgert_contract_init(&(edgert_contract_t){0}, "f", NULL, 2, NULL, NULL, 0))
WANT_EINVAL(a_cfmt_c, edgert_contract_format(NULL, (char[64]){0}, 64))
WANT_EINVAL(a_cfmt_buf, edgert_contract_format(&C, NULL, 64))
WANT_NOOP(t_bytes_release, edgert_bytes_release(NULL))
WANT_EINVAL(t_find_name, edgert_type_find(NULL, &(const edgert_type_t *){0}))
WANT_EINVAL(t_find_out, edgert_type_find("int64", NULL))
WANT_EINVAL(t_register_name, edgert_type_register(NULL, NULL, NULL, NULL, NULL, NULL))
WANT_EINVAL(t_custom_name, edgert_register_custom_type(NULL, NULL, NULL, NULL))
WANT_EINVAL(t_custom_boxed_name, edgert_register_custom_type_boxed(NULL, NULL, NULL, NULL, NULL))
WANT_VALUE(t_name, edgert_type_name(NULL))
WANT_VALUE(t_kind, edgert_type_kind(NULL))
WANT_VALUE(t_size, edgert_type_size(NULL))
WANT_VALUE(t_has_box, edgert_type_has_box(NULL))
WANT_EINVAL(t_check_t, edgert_type_check(NULL, &V))
WANT_EINVAL(t_copy_t, edgert_type_copy(NULL, &V, &V))
WANT_EINVAL(t_box_t, edgert_type_box(NULL, &V, &(void *){0}))
WANT_EINVAL(t_unregister, edgert_type_unregister(NULL))
WANT_VALUE(t_containers, edgert_type_containers(NULL))

/* ---- dict ---- */
WANT_EINVAL(d_new_k, edgert_dict_new(NULL, T, &(edgert_dict_t *){0}))
WANT_EINVAL(d_new_v, edgert_dict_new(T, NULL, &(edgert_dict_t *){0}))
WANT_EINVAL(d_new_out, edgert_dict_new(T, T, NULL))
WANT_NOOP(d_free, edgert_dict_free(NULL))
WANT_VALUE(d_key_type, edgert_dict_key_type(NULL))
WANT_VALUE(d_value_type, edgert_dict_value_type(NULL))
WANT_VALUE(d_len, edgert_dict_len(NULL))
WANT_VALUE(d_version, edgert_dict_version(NULL))
WANT_VALUE(d_memory, edgert_dict_memory(NULL))
WANT_VALUE(d_find, edgert_dict_find(NULL, &K))
WANT_VALUE(d_find_key, edgert_dict_find(D, NULL))
WANT_VALUE(d_find_i64, edgert_dict_find_i64(NULL, 1))
WANT_VALUE(d_find_tagged, edgert_dict_find_tagged(NULL, &K, 0))
WANT_EINVAL(d_set_hasher, edgert_dict_set_hasher(NULL, NULL, NULL))
WANT_VALUE(d_find_hashed, edgert_dict_find_hashed(NULL, &K, 1))
WANT_EINVAL(d_set_hashed, edgert_dict_set_hashed(NULL, &K, 1, &V))
WANT_EINVAL(d_pop_hashed, edgert_dict_pop_hashed(NULL, &K, 1, &V))
WANT_EINVAL(d_index, edgert_dict_index(NULL, &K))
WANT_VALUE(d_view, edgert_dict_view(NULL))
WANT_EINVAL(d_get, edgert_dict_get(NULL, &K, &V))
WANT_EINVAL(d_get_key, edgert_dict_get(D, NULL, &V))
WANT_EINVAL(d_set, edgert_dict_set(NULL, &K, &V))
WANT_EINVAL(d_set_key, edgert_dict_set(D, NULL, &V))
WANT_EINVAL(d_set_value, edgert_dict_set(D, &K, NULL))
WANT_VALUE(d_upsert, edgert_dict_upsert(NULL, &K, NULL, NULL))
WANT_VALUE(d_upsert_key, edgert_dict_upsert(D, NULL, NULL, NULL))
WANT_VALUE(d_upsert_i64, edgert_dict_upsert_i64(NULL, 1, NULL, NULL))
WANT_VALUE(d_probed, edgert_dict_insert_i64_probed(NULL, 1, NULL, NULL))
WANT_EINVAL(d_del, edgert_dict_del(NULL, &K))
WANT_EINVAL(d_del_key, edgert_dict_del(D, NULL))
WANT_EINVAL(d_pop, edgert_dict_pop(NULL, &K, &V))
WANT_EINVAL(d_pop_key, edgert_dict_pop(D, NULL, &V))
WANT_EINVAL(d_popitem, edgert_dict_popitem(NULL, &K, &V))
WANT_EINVAL(d_clear, edgert_dict_clear(NULL))
WANT_EINVAL(d_reserve, edgert_dict_reserve(NULL, 4))
WANT_EINVAL(d_copy, edgert_dict_copy(NULL, &(edgert_dict_t *){0}))
WANT_EINVAL(d_copy_out, edgert_dict_copy(D, NULL))
WANT_EINVAL(d_set_many, edgert_dict_set_many(NULL, &K, &V, 1))
WANT_EINVAL(d_set_many_keys, edgert_dict_set_many(D, NULL, &V, 1))
WANT_EINVAL(d_set_many_values, edgert_dict_set_many(D, &K, NULL, 1))
WANT_EINVAL(d_get_many, edgert_dict_get_many(NULL, &K, 1, &V, NULL, NULL))
WANT_EINVAL(d_get_many_keys, edgert_dict_get_many(D, NULL, 1, &V, NULL, NULL))
WANT_EINVAL(d_get_many_out, edgert_dict_get_many(D, &K, 1, NULL, NULL, NULL))
WANT_VALUE(d_key_at, edgert_dict_key_at(NULL, 0))
WANT_VALUE(d_value_at, edgert_dict_value_at(NULL, 0))
WANT_VALUE(d_values, edgert_dict_values(NULL))
WANT_NOOP(d_pin, edgert_dict_pin(NULL))
WANT_EINVAL(d_unpin, edgert_dict_unpin(NULL))
WANT_VALUE(d_pins, edgert_dict_pins(NULL))
WANT_NOOP(d_iter_init, edgert_dict_iter_init(NULL, &(edgert_dict_iter_t){0}))
WANT_NOOP(d_iter_init_it, edgert_dict_iter_init(D, NULL))
WANT_EINVAL(d_iter_next, edgert_dict_iter_next(NULL, &(const void *){0}, &(void *){0}))
WANT_EINVAL(d_set_cache, edgert_dict_set_cache(NULL, 0))
WANT_NOOP(d_cache_stats, edgert_dict_cache_stats(NULL, &(edgert_dict_cache_stats_t){0}))
WANT_NOOP(d_cache_stats_out, edgert_dict_cache_stats(D, NULL))

/* ---- list ---- */
WANT_VALUE(l_view, edgert_list_view(NULL))
WANT_EINVAL(l_new_t, edgert_list_new(NULL, 0, &(edgert_list_t *){0}))
WANT_EINVAL(l_new_out, edgert_list_new(T, 0, NULL))
WANT_NOOP(l_free, edgert_list_free(NULL))
WANT_VALUE(l_type, edgert_list_type(NULL))
WANT_VALUE(l_len, edgert_list_len(NULL))
WANT_VALUE(l_capacity, edgert_list_capacity(NULL))
WANT_VALUE(l_itemsize, edgert_list_itemsize(NULL))
WANT_VALUE(l_memory, edgert_list_memory(NULL))
WANT_VALUE(l_data, edgert_list_data(NULL))
WANT_VALUE(l_at, edgert_list_at(NULL, 0))
WANT_EINVAL(l_get, edgert_list_get(NULL, 0, &K))
WANT_EINVAL(l_get_out, edgert_list_get(L, 0, NULL))
WANT_EINVAL(l_set, edgert_list_set(NULL, 0, &K))
WANT_EINVAL(l_set_value, edgert_list_set(L, 0, NULL))
WANT_EINVAL(l_append, edgert_list_append(NULL, &K))
WANT_EINVAL(l_append_value, edgert_list_append(L, NULL))
WANT_EINVAL(l_insert, edgert_list_insert(NULL, 0, &K))
WANT_EINVAL(l_insert_value, edgert_list_insert(L, 0, NULL))
WANT_EINVAL(l_pop, edgert_list_pop(NULL, 0, &K))
WANT_EINVAL(l_splice, edgert_list_splice(NULL, 0, 0, &K, 1))
WANT_EINVAL(l_splice_items, edgert_list_splice(L, 0, 0, NULL, 1))
WANT_EINVAL(l_reserve, edgert_list_reserve(NULL, 4))
WANT_EINVAL(l_clear, edgert_list_clear(NULL))
WANT_EINVAL(l_reverse, edgert_list_reverse(NULL))
WANT_EINVAL(l_sort, edgert_list_sort(NULL, 0))
WANT_EINVAL(l_copy, edgert_list_copy(NULL, &(edgert_list_t *){0}))
WANT_EINVAL(l_copy_out, edgert_list_copy(L, NULL))
WANT_EINVAL(l_swap_a, edgert_list_swap(NULL, L))
WANT_EINVAL(l_swap_b, edgert_list_swap(L, NULL))
WANT_NOOP(l_pin, edgert_list_pin(NULL))
WANT_EINVAL(l_unpin, edgert_list_unpin(NULL))
WANT_VALUE(l_pins, edgert_list_pins(NULL))

/* ---- loader ---- */
WANT_EINVAL(m_load_path, edgert_module_load(NULL, NULL, &(edgert_module_t *){0}))
WANT_EINVAL(m_load_out, edgert_module_load(FX("loader_kernels"), NULL, NULL))
WANT_EINVAL(m_load_ex_path, edgert_module_load_ex(NULL, NULL, NULL, &(edgert_module_t *){0}))
WANT_EINVAL(m_load_ex_out, edgert_module_load_ex(FX("loader_kernels"), NULL, NULL, NULL))
WANT_NOOP(m_unload, edgert_module_unload(NULL))
WANT_VALUE(m_unloaded, edgert_module_unloaded(NULL))
WANT_NOOP(m_free, edgert_module_free(NULL))
WANT_VALUE(m_path, edgert_module_path(NULL))
WANT_VALUE(m_sha256, edgert_module_sha256(NULL))
WANT_VALUE(m_size, edgert_module_size(NULL))
WANT_EINVAL(m_verify, edgert_module_verify(NULL, "00"))
WANT_EINVAL(m_verify_hex, edgert_module_verify(M, NULL))
WANT_VALUE(m_quarantined, edgert_module_quarantined(NULL))
WANT_EINVAL(m_reload, edgert_module_reload(NULL, NULL, NULL))
WANT_VALUE(m_generation, edgert_module_generation(NULL))
WANT_EINVAL(m_stats, edgert_module_stats(NULL, &(edgert_module_stats_t){0}))
WANT_EINVAL(m_stats_out, edgert_module_stats(M, NULL))
WANT_EINVAL(m_address_of, edgert_module_address_of(NULL, "inc", &(void *){0}))
WANT_EINVAL(m_address_of_name, edgert_module_address_of(M, NULL, &(void *){0}))
WANT_EINVAL(m_address_of_out, edgert_module_address_of(M, "inc", NULL))
WANT_EINVAL(m_bind, edgert_module_bind(NULL, &C, &(edgert_func_t *){0}))
WANT_EINVAL(m_bind_c, edgert_module_bind(M, NULL, &(edgert_func_t *){0}))
WANT_VALUE(m_function, edgert_module_function(NULL, "inc"))
WANT_VALUE(m_function_name, edgert_module_function(M, NULL))
WANT_VALUE(f_name, edgert_func_name(NULL))
WANT_VALUE(f_contract, edgert_func_contract(NULL))
WANT_VALUE(f_module, edgert_func_module(NULL))
WANT_VALUE(f_address, edgert_func_address(NULL))
WANT_VALUE(f_is_fast, edgert_func_is_fast(NULL))
WANT_EINVAL(f_call, edgert_func_call(NULL, NULL, NULL))
WANT_EINVAL(f_call_args, edgert_func_call(F, NULL, &K))
WANT_EINVAL(f_call_values, edgert_func_call_values(NULL, NULL, NULL))
WANT_EINVAL(f_call_values_v, edgert_func_call_values(F, NULL, &K))
WANT_EINVAL(f_call_serialized, edgert_func_call_serialized(NULL, NULL, NULL))
WANT_EINVAL(f_call_serialized_v, edgert_func_call_serialized(F, NULL, &K))
WANT_EINVAL(i_calls_path, edgert_interposable_calls(NULL, NULL, NULL))

/* ---- manifest ---- */
WANT_EINVAL(mf_parse_json, edgert_manifest_parse(NULL, 2, NULL, &(edgert_manifest_t *){0}))
WANT_EINVAL(mf_parse_out, edgert_manifest_parse("{}", 2, NULL, NULL))
WANT_EINVAL(mf_read_path, edgert_manifest_read(NULL, &(edgert_manifest_t *){0}))
WANT_EINVAL(mf_read_out, edgert_manifest_read("x.json", NULL))
WANT_EINVAL(mf_load_modules, edgert_manifest_load_modules(NULL))
WANT_EINVAL(mf_load_path, edgert_manifest_load(NULL, &(edgert_manifest_t *){0}))
WANT_EINVAL(mf_load_out, edgert_manifest_load("x.json", NULL))
WANT_NOOP(mf_free, edgert_manifest_free(NULL))
WANT_VALUE(mf_count, edgert_manifest_module_count(NULL))
WANT_VALUE(mf_path, edgert_manifest_module_path(NULL, 0))
WANT_VALUE(mf_file, edgert_manifest_module_file(NULL, 0))
WANT_VALUE(mf_sha256, edgert_manifest_module_sha256(NULL, 0))
WANT_VALUE(mf_ccount, edgert_manifest_contract_count(NULL, 0))
WANT_VALUE(mf_contract, edgert_manifest_contract(NULL, 0, 0))
WANT_VALUE(mf_module, edgert_manifest_module(NULL, 0))
WANT_VALUE(mf_by_path, edgert_manifest_module_by_path(NULL, "x"))
WANT_VALUE(mf_by_path_path, edgert_manifest_module_by_path(MF, NULL))
WANT_EINVAL(mf_function, edgert_manifest_function(NULL, "f", &(edgert_func_t *){0}))
WANT_EINVAL(mf_function_name, edgert_manifest_function(MF, NULL, &(edgert_func_t *){0}))
WANT_EINVAL(mf_function_out, edgert_manifest_function(MF, "f", NULL))
WANT_EINVAL(cj_json, edgert_contract_parse_json(NULL, 2, &(edgert_contract_t){0}))
WANT_EINVAL(cj_out, edgert_contract_parse_json("{}", 2, NULL))

/* ---- guard ---- */
WANT_EINVAL(g_run, edgert_guard_run(NULL, NULL, "x"))
WANT_EINVAL(g_call, edgert_guard_call(NULL, NULL, NULL, NULL, NULL))
WANT_NOOP(g_stats, edgert_guard_stats(NULL))


/* ---- the other pointer arguments, with a real handle ---- */
WANT_EINVAL(t_copy_dst, edgert_type_copy(T, NULL, &V))
WANT_EINVAL(t_box_src, edgert_type_box(T, NULL, &(void *){0}))
WANT_EINVAL(t_box_out, edgert_type_box(T, &V, NULL))
WANT_VALUE(d_find_tagged_key, edgert_dict_find_tagged(D, NULL, 0))
WANT_VALUE(d_find_hashed_key, edgert_dict_find_hashed(D, NULL, 1))
WANT_EINVAL(d_set_hashed_key, edgert_dict_set_hashed(D, NULL, 1, &V))
WANT_EINVAL(d_set_hashed_value, edgert_dict_set_hashed(D, &K, 1, NULL))
WANT_EINVAL(d_pop_hashed_key, edgert_dict_pop_hashed(D, NULL, 1, &V))
WANT_EINVAL(d_index_key, edgert_dict_index(D, NULL))
WANT_EINVAL(d_iter_next_it, edgert_dict_iter_next(NULL, NULL, NULL))
WANT_EINVAL(g_call_args, edgert_guard_call(F, NULL, &K, NULL, NULL))
WANT_EINVAL(i_calls_fn, edgert_interposable_calls(FX("loader_kernels"), NULL, NULL))
WANT_EINVAL(a_parse_out2, edgert_abi_type_parse("c_int", 1, NULL))

#define E(id) {#id, id, EDGERT_EINVAL, 1}
#define Z(id) {#id, id, 0, 0}
static const nullcase_t cases[] = {
    Z(c_alloc), E(a_parse_name), E(a_parse_out), E(a_name_t), E(a_name_buf), Z(a_size),
    E(a_cinit_c), E(a_cinit_name), E(a_cinit_args), E(a_cfmt_c), E(a_cfmt_buf),
    Z(t_bytes_release), E(t_find_name), E(t_find_out), E(t_register_name), E(t_custom_name),
    E(t_custom_boxed_name), Z(t_name), Z(t_kind), Z(t_size), Z(t_has_box), E(t_check_t),
    E(t_copy_t), E(t_box_t), E(t_unregister), Z(t_containers),
    E(d_new_k), E(d_new_v), E(d_new_out), Z(d_free), Z(d_key_type), Z(d_value_type), Z(d_len),
    Z(d_version), Z(d_memory), Z(d_find), Z(d_find_key), Z(d_find_i64), Z(d_find_tagged),
    E(d_set_hasher), Z(d_find_hashed), E(d_set_hashed), E(d_pop_hashed), E(d_index),
    Z(d_view), E(d_get), E(d_get_key), E(d_set), E(d_set_key), E(d_set_value), Z(d_upsert),
    Z(d_upsert_key), Z(d_upsert_i64), Z(d_probed), E(d_del), E(d_del_key), E(d_pop),
    E(d_pop_key), E(d_popitem), E(d_clear), E(d_reserve), E(d_copy), E(d_copy_out),
    E(d_set_many), E(d_set_many_keys), E(d_set_many_values), E(d_get_many),
    E(d_get_many_keys), E(d_get_many_out), Z(d_key_at), Z(d_value_at), Z(d_values), Z(d_pin),
    E(d_unpin), Z(d_pins), Z(d_iter_init), Z(d_iter_init_it), E(d_iter_next), E(d_set_cache),
    Z(d_cache_stats), Z(d_cache_stats_out),
    Z(l_view), E(l_new_t), E(l_new_out), Z(l_free), Z(l_type), Z(l_len), Z(l_capacity),
    Z(l_itemsize), Z(l_memory), Z(l_data), Z(l_at), E(l_get), E(l_get_out), E(l_set),
    E(l_set_value), E(l_append), E(l_append_value), E(l_insert), E(l_insert_value), E(l_pop),
    E(l_splice), E(l_splice_items), E(l_reserve), E(l_clear), E(l_reverse), E(l_sort),
    E(l_copy), E(l_copy_out), E(l_swap_a), E(l_swap_b), Z(l_pin), E(l_unpin), Z(l_pins),
    E(m_load_path), E(m_load_out), E(m_load_ex_path), E(m_load_ex_out), Z(m_unload),
    Z(m_unloaded), Z(m_free), Z(m_path), Z(m_sha256), Z(m_size), E(m_verify), E(m_verify_hex),
    Z(m_quarantined), E(m_reload), Z(m_generation), E(m_stats), E(m_stats_out), E(m_address_of), E(m_address_of_name), E(m_address_of_out), E(m_bind),
    E(m_bind_c), Z(m_function), Z(m_function_name), Z(f_name), Z(f_contract), Z(f_module),
    Z(f_address), Z(f_is_fast), E(f_call), E(f_call_args), E(f_call_values),
    E(f_call_values_v), E(f_call_serialized), E(f_call_serialized_v), E(i_calls_path),
    E(mf_parse_json), E(mf_parse_out), E(mf_read_path), E(mf_read_out), E(mf_load_modules),
    E(mf_load_path), E(mf_load_out), Z(mf_free), Z(mf_count), Z(mf_path), Z(mf_file),
    Z(mf_sha256), Z(mf_ccount), Z(mf_contract), Z(mf_module), Z(mf_by_path),
    Z(mf_by_path_path), E(mf_function), E(mf_function_name), E(mf_function_out), E(cj_json),
    E(cj_out), E(g_run), E(g_call), Z(g_stats),
    E(t_copy_dst), E(t_box_src), E(t_box_out),
    Z(d_find_tagged_key), Z(d_find_hashed_key), E(d_set_hashed_key), E(d_set_hashed_value),
    E(d_pop_hashed_key), E(d_index_key), E(d_iter_next_it), E(g_call_args),
    E(i_calls_fn), E(a_parse_out2),
};

/* 0 if the case kept the rule, else prints why and returns 1. */
static int run_case(const nullcase_t *c) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return 1;
  if (pid == 0) {
    edgert_clear_error();
    long long r = c->fn();
    int ok = r == c->want && (!c->einval || edgert_last_error()[0] != '\0');
    if (!ok)
      printf("  %s: returned %lld, wanted %lld (message \"%s\")\n", c->what, r, c->want,
             edgert_last_error());
    fflush(stdout);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid)
    return 1;
  if (WIFSIGNALED(st)) {
    printf("  %s: crashed (signal %d)\n", c->what, WTERMSIG(st));
    return 1;
  }
  return WEXITSTATUS(st) != 0;
}

static void test_every_entry_point_keeps_the_null_rule(void **state) {
  (void)state;
  size_t n = sizeof cases / sizeof cases[0], bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += (size_t)run_case(&cases[i]);
  printf("  %zu of %zu calls with a NULL argument broke the rule\n", bad, n);
  assert_int_equal(bad, 0);
}

static int setup(void **state) {
  (void)state;
  const char *args[] = {"c_int64"};
  T = edgert_type_builtin(EDGERT_KIND_INT64);
  if (T == NULL || edgert_dict_new(T, T, &D) != 0 || edgert_list_new(T, 4, &L) != 0 ||
      edgert_list_append(L, &K) != 0 ||
      edgert_module_load(FX("loader_kernels"), NULL, &M) != 0 ||
      edgert_contract_init(&C, "inc", args, 1, "c_int64", NULL, 0) != 0 ||
      edgert_module_bind(M, &C, &F) != 0 ||
      edgert_manifest_parse(MANI, strlen(MANI), NULL, &MF) != 0) {
    printf("setup: %s\n", edgert_last_error());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  edgert_manifest_free(MF);
  edgert_module_free(M);
  edgert_list_free(L);
  edgert_dict_free(D);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_entry_point_keeps_the_null_rule),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
