/* main.c — placeholder entry point while the launcher is assembled. */
#include <stdio.h>
int main(void) { fprintf(stderr, "uniprefill-bench: launcher not assembled yet\n"); return 1; }
