/*
 * responder.h: chat text to triage, and triage to an answer.  No I/O and no
 * knowledge of transports: it needs only event.h and kb.h.  A responder holds
 * scratch space and a word cache, so use one per thread.
 */
#ifndef KNEEBOT_RESPONDER_H
#define KNEEBOT_RESPONDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"
#include "kb.h"

enum triage_kind {
	TRIAGE_SILENT,    /* nothing to answer */
	TRIAGE_ANSWER,    /* red flags and/or conditions to advise on */
	TRIAGE_CLARIFY,   /* a knee complaint we cannot place yet: ask */
	TRIAGE_HINT,      /* addressed, but not about a knee: say what we do */
};

/* What one message (or a message read with its context) says. */
struct triage {
	enum triage_kind kind;
	bool complaint;     /* a current knee/leg symptom of the sender's (or asked about) */
	bool question;
	bool addressed;
	float score[KB_NCONDITIONS];
	uint8_t evidence[KB_NCONDITIONS];   /* positive cues that counted */
	float flag_score[KB_NREDFLAGS];
	float factor_score[KB_NFACTORS];
	const struct kb_cue *best[KB_NCONDITIONS];      /* strongest cue per condition */
	const struct kb_cue *flag_cue[KB_NREDFLAGS];
	uint32_t flags;     /* raised red flags, bit per kb_redflag_ids index */
	uint32_t factors;   /* raised factors */
	uint8_t ranked[KB_NCONDITIONS];  /* named conditions, best first */
	float confidence[KB_NCONDITIONS]; /* per ranked entry, 0..1 */
	unsigned nranked;
	unsigned cue_hits;  /* matched cues (any target), for follow-up reading */
};

struct responder;

struct responder *responder_new(const struct kb *kb);
void responder_free(struct responder *r);
const struct kb *responder_kb(const struct responder *r);

/*
 * Reads text[0..n).  prior, when not NULL, is the same person's recent
 * unanswered context (memory.h); a follow-up is read together with it.
 */
void responder_judge(struct responder *r, const char *text, size_t n, bool addressed,
	const struct triage *prior, struct triage *out);

/* When trace is not NULL, judge appends one line per counted cue ("cues.ini:12 +2.0 condition mcl"). */
void responder_trace(struct responder *r, struct buf *trace);

/* Renders t within budget: plain text into text, HTML into html when asked. */
void responder_compose(const struct responder *r, const struct triage *t,
	const struct budget *budget, const char *prefix, struct buf *text, struct buf *html);

#endif
