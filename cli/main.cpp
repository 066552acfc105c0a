// `offsim`: the command line (cli/command_line.cpp).
#include "offsim/cli/command_line.hpp"

int main(int argc, char** argv) { return offsim::cli::run_command_line(argc, argv); }
