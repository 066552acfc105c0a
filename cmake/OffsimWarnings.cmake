# Compile options shared by every offsim target: warnings (errors under OFFSIM_WERROR) and sanitizers.
add_library(offsim_build_options INTERFACE)
target_compile_options(offsim_build_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2)
if(OFFSIM_WERROR)
  target_compile_options(offsim_build_options INTERFACE -Werror)
endif()
if(OFFSIM_SANITIZE)
  target_compile_options(offsim_build_options INTERFACE -fsanitize=${OFFSIM_SANITIZE} -fno-omit-frame-pointer
                                                        -fno-sanitize-recover=all)
  target_link_options(offsim_build_options INTERFACE -fsanitize=${OFFSIM_SANITIZE})
endif()

# offsim_add_library(name SOURCES...) : a library whose public headers live in include/offsim/<module>/.
function(offsim_add_library name)
  add_library(${name} ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PRIVATE offsim_build_options)
endfunction()
