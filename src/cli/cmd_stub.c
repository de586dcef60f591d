#include "cli.h"
int cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; return 2; }
int cmd_lm(int argc, char **argv) { (void)argc; (void)argv; return 2; }
