/* BROOK_API: marks a function of brook's public API, the only symbols libbrook.so exports.
 *
 * The library is compiled with -fvisibility=hidden, so everything else (the internal bk_*
 * functions, helpers of one file) stays inside it: programs cannot come to depend on it, the
 * dynamic linker has fewer symbols to resolve, and calls inside the library need no PLT. A
 * public function declared without BROOK_API is not exported: ctest "abi_exports" lists such
 * functions (it compares every declaration in every public header with the exports).
 *
 * Static inline functions in the headers (the options initialisers, window definitions) are
 * compiled into the caller and carry no BROOK_API.
 *
 * BROOK_STATIC: define it when linking libbrook.a, if you like; on ELF platforms it changes
 * nothing (the attribute only matters to the library's own definitions), but it is the macro a
 * Windows port will need. Windows is not supported yet: there, BROOK_API would be
 * __declspec(dllexport) while building the DLL (a BROOK_BUILDING definition), and
 * __declspec(dllimport) in programs using it, empty with BROOK_STATIC.
 *
 * A binding or a build that wants to decide itself may define BROOK_API before including
 * any brook header. */
#ifndef BROOK_EXPORT_H
#define BROOK_EXPORT_H

#ifndef BROOK_API
#if defined(BROOK_STATIC)
#define BROOK_API
#elif defined(__GNUC__) || defined(__clang__)
#define BROOK_API __attribute__((visibility("default")))
#else
#define BROOK_API
#endif
#endif

#endif
