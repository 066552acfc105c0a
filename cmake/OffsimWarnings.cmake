# Compile options shared by every offsim target: warnings (errors under OFFSIM_WERROR) and sanitizers.
add_library(offsim_build_options INTERFACE)
target_compile_options(offsim_build_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2)
# GCC 12 reports -Wrestrict on plain std::string concatenation at -O2 (a false positive in libstdc++'s
# char_traits::copy, GCC bug 105651, fixed in GCC 13); keep the rest of the warnings as errors.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(offsim_build_options INTERFACE -Wno-restrict)
endif()
if(OFFSIM_WERROR)
  target_compile_options(offsim_build_options INTERFACE -Werror)
endif()
if(OFFSIM_SANITIZE)
  # GCC's -Wmaybe-uninitialized reports false positives on instrumented code (its manual says the warning
  # depends on optimization; sanitizers change the optimized code), e.g. on std::optional<std::string>.
  target_compile_options(offsim_build_options INTERFACE -fsanitize=${OFFSIM_SANITIZE} -fno-omit-frame-pointer
                                                        -fno-sanitize-recover=all)
  target_link_options(offsim_build_options INTERFACE -fsanitize=${OFFSIM_SANITIZE})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(offsim_build_options INTERFACE -Wno-maybe-uninitialized)
  endif()
endif()

# offsim_add_library(name SOURCES...) : a library whose public headers live in include/offsim/<module>/.
# Position-independent, because the Python module (python/) links them into a shared object.
# -fno-semantic-interposition keeps GCC's inlining and direct calls as in the -fPIE code the executables
# were compiled to before, and the linker turns thread-local and GOT accesses back into direct ones in an
# executable, so the programs and their benchmarks are unchanged.
function(offsim_add_library name)
  add_library(${name} ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PRIVATE offsim_build_options)
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" OR CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${name} PRIVATE -fno-semantic-interposition)
  endif()
endfunction()
