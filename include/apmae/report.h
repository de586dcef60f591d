/* apmae/report.h — report.html: one self-contained page with what a study
 * found (docs/study.md "The report"). Images are embedded as data URIs and
 * charts are inline SVG, so the file opens from disk with no network. */
#ifndef APMAE_REPORT_H
#define APMAE_REPORT_H

#include "apmae/base.h"

/* The page's sections, in order: their element ids stay the same from one
 * version to the next, so links and tests can rely on them. */
size_t ap_report_section_count(void);
const char *ap_report_section_id(size_t i);

/* Render the study in study_dir (its study.json and the stages' outputs)
 * into out_path, atomically. A stage that has not run gets its section with
 * a note saying so. */
ap_status ap_report_write(const char *study_dir, const char *out_path, ap_error *err);

#endif
