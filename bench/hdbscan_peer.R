# HDBSCAN benchmark peer (bench/cluster_bench.sh): R's dbscan::hdbscan on a
# raw little-endian float32 matrix, timed inside R (R's start-up and the
# file read excluded), best of REPS runs.
#
#   Rscript bench/hdbscan_peer.R IN.f32 N D MINPTS OUT.txt [REPS]
#
# Prints {"seconds": S, "clusters": K, "noise": M} and writes the labels to
# OUT.txt, one per line, apmae's convention (-1 = noise, 0..K-1).
suppressPackageStartupMessages(library(dbscan))
args <- commandArgs(trailingOnly = TRUE)
n <- as.integer(args[2]); d <- as.integer(args[3]); min_pts <- as.integer(args[4])
reps <- if (length(args) >= 6) as.integer(args[6]) else 1L
con <- file(args[1], "rb")
x <- matrix(readBin(con, "numeric", n = n * d, size = 4, endian = "little"), ncol = d, byrow = TRUE)
close(con)
best <- Inf
for (r in seq_len(reps)) {
  t <- system.time(h <- hdbscan(x, minPts = min_pts))[["elapsed"]]
  best <- min(best, t)
}
labels <- h$cluster - 1L # R: 0 = noise, 1..K
writeLines(as.character(labels), args[5])
cat(sprintf('{"seconds": %.4f, "clusters": %d, "noise": %d}\n', best, max(h$cluster), sum(h$cluster == 0)))
