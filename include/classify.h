/*
 * classify.h: the --classify mode, JSON lines of messages to JSON lines of
 * triage, for the evaluation sets and the benches.
 */
#ifndef KNEEBOT_CLASSIFY_H
#define KNEEBOT_CLASSIFY_H

#include <stdbool.h>
#include <stdio.h>

#include "buf.h"

struct responder;

/* A longer input line is answered with an error and skipped, so memory stays bounded. */
#define CLASSIFY_MAX_LINE (1u << 20)

/* Judges one JSON line and appends one JSON line (with '\n') to o. */
void classify_line(struct responder *r, const char *nick, const char *line, size_t n, bool explain, struct buf *o);
/* explain adds "explain": the cue lines that counted, for whoever tunes cues.ini. */
int classify_stream(struct responder *r, const char *nick, bool explain, FILE *in, FILE *out);

#endif
