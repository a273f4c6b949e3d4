# cmake -DMODULE=<built kernel> -DOUT=<manifest.json> -P write_manifest.cmake
# Writes the manifest listing MODULE (by its name, relative to the manifest,
# which goes in the same directory) with its SHA-256 and its contract.
file(SHA256 "${MODULE}" hash)
get_filename_component(name "${MODULE}" NAME)
file(WRITE "${OUT}" "{\"schema_version\": 1,
 \"modules\": [{\"path\": \"${name}\",
               \"sha256\": \"${hash}\",
               \"contracts\": [{\"function_name\": \"vec_add_f32\",
                               \"arg_types\": [\"LP_c_float\", \"c_size_t\"],
                               \"return_type\": null,
                               \"calling_convention\": \"cdecl\"}]}]}
")
