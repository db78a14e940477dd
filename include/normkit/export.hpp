/* normkit/export.hpp — NORMKIT_API, the mark on every symbol the shared library exports.
   The library is compiled with -fvisibility=hidden, so only what carries this mark is
   visible to users; plain preprocessor only, so the C header normkit.h can include it. */
#ifndef NORMKIT_EXPORT_HPP
#define NORMKIT_EXPORT_HPP

#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(NORMKIT_BUILDING)
#    define NORMKIT_API __declspec(dllexport)
#  elif defined(NORMKIT_STATIC)
#    define NORMKIT_API
#  else
#    define NORMKIT_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
/** Marks a declaration as part of the public ABI of libnormkit (default visibility). */
#  define NORMKIT_API __attribute__((visibility("default")))
#else
#  define NORMKIT_API
#endif

#endif /* NORMKIT_EXPORT_HPP */
