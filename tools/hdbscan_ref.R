# Reference HDBSCAN results from R's dbscan package (Debian r-cran-dbscan)
# for tests/test_hdbscan.c: small data sets with known structure, clustered
# by dbscan::hdbscan, written as JSON fixtures under tests/fixtures/cluster/.
#
#   Rscript tools/hdbscan_ref.R [OUT_DIR]     (default tests/fixtures/cluster)
#
# Definitions (docs/analysis.md "HDBSCAN" has the comparison):
# - R's minPts counts the point itself: its core distance is the distance to
#   the (minPts - 1)-th nearest other point, i.e. apmae's min_samples =
#   minPts. hdbscan() also uses minPts as the minimum cluster size; the
#   "split" cases call the package's own steps (coredist, mrdist, prims,
#   hclustMergeOrder, computeStability, extractUnsupervised) with
#   min_samples for the core distances and min_cluster_size for the tree.
# - R never selects the root of the cluster tree (no allow_single_cluster):
#   for the "single" case the expected labels are derived from R's tree by
#   the rule of the Python hdbscan library (see single_cluster_labels).
# Coordinates are rounded to multiples of 2^-16, so float32 holds them
# exactly and R and apmae cluster the same numbers.
suppressPackageStartupMessages(library(dbscan))

args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[1] else "tests/fixtures/cluster"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

grid <- function(x) round(x * 65536) / 65536

# R's cluster ids (0 = noise) as apmae's convention (-1 = noise), numbered by
# first appearance; the test compares partitions up to a permutation anyway.
as_labels <- function(cl) {
  ids <- unique(cl[cl != 0])
  out <- match(cl, ids) - 1L
  out[cl == 0] <- -1L
  out
}

# The condensed tree as the Python hdbscan library (and Campello et al.)
# define it, built from R's single-linkage hierarchy hc: walking down from
# the root, a side with fewer than min_cluster_size points leaves the
# current cluster as a whole at lambda = 1 / height. (R's computeStability
# instead keeps such points until each of them merges as a singleton, so
# its GLOSH scores and stabilities differ; its labels agreed here.)
# Returns each point's cluster and lambda, each cluster's parent and birth.
lib_condensed <- function(hc, mcs) {
  merge <- hc$merge; m <- nrow(merge); n <- m + 1
  size <- integer(m)
  side_size <- function(c) if (c < 0) 1L else size[c]
  for (k in seq_len(m)) size[k] <- side_size(merge[k, 1]) + side_size(merge[k, 2])
  row_cluster <- integer(m); row_cluster[m] <- 1L # 0: inside a side that fell out
  parent <- 0L; birth <- 0
  pt_cluster <- integer(n); pt_lambda <- numeric(n)
  leaves <- function(c) if (c < 0) -c else c(leaves(merge[c, 1]), leaves(merge[c, 2]))
  for (k in m:1) {
    cl <- row_cluster[k]
    if (cl == 0) next
    lambda <- 1 / hc$height[k]
    sides <- merge[k, ]
    big <- sapply(sides, side_size) >= mcs
    for (s in 1:2) {
      c <- sides[s]
      if (!big[s]) {
        pts <- leaves(c); pt_cluster[pts] <- cl; pt_lambda[pts] <- lambda
      } else if (all(big)) {
        parent <- c(parent, cl); birth <- c(birth, lambda); row_cluster[c] <- length(parent)
      } else {
        row_cluster[c] <- cl
      }
    }
  }
  list(pt_cluster = pt_cluster, pt_lambda = pt_lambda, parent = parent, birth = birth)
}

# GLOSH on that tree: 1 - lambda(point) / the largest lambda in the subtree
# of the cluster it left.
lib_glosh <- function(ct) {
  deaths <- numeric(length(ct$parent))
  for (p in seq_along(ct$pt_cluster)) deaths[ct$pt_cluster[p]] <- max(deaths[ct$pt_cluster[p]], ct$pt_lambda[p])
  for (c in rev(seq_along(ct$parent))[-length(ct$parent)]) {
    pc <- ct$parent[c]
    deaths[pc] <- max(deaths[pc], ct$birth[c], deaths[c])
  }
  1 - ct$pt_lambda / deaths[ct$pt_cluster]
}

# Points whose side is decided by a tie: they leave a cluster at exactly the
# lambda at which it was born (a point whose core distance is its distance
# to both sides bridges them by two edges of equal weight), so a tied merge
# order (R: Prim's discovery order; apmae: point index) can as well put them
# in the sibling cluster; and their exact copies, which are interchangeable.
tied_points <- function(ct, x) {
  tied <- ct$pt_cluster > 1 & ct$pt_lambda == ct$birth[ct$pt_cluster]
  key <- apply(x, 1, paste, collapse = ",")
  which(key %in% key[tied]) - 1L
}

# hdbscan() with separate min_samples (core distances) and min_cluster_size
# (cluster tree), built from the package's own steps as hdbscan() runs them.
r_hdbscan <- function(x, min_samples, min_cluster_size, coords = x) {
  core <- coredist(x, min_samples)
  mrd <- mrdist(x, min_samples, coredist = core)
  mst <- dbscan:::prims(mrd, attr(mrd, "Size"))
  hc <- dbscan:::hclustMergeOrder(mst, order(mst[, 3]))
  tree <- dbscan:::computeStability(hc, min_cluster_size, compute_glosh = TRUE)
  tree <- dbscan:::extractUnsupervised(tree)
  ct <- lib_condensed(hc, min_cluster_size)
  list(labels = as_labels(attr(tree, "cluster")), r_glosh = attr(tree, "glosh"), glosh = lib_glosh(ct),
       tied = tied_points(ct, coords), tree = tree)
}

# allow_single_cluster as the Python hdbscan library defines it, from R's
# tree: the root (birth lambda 0) is kept as the one cluster when its
# stability is at least the best its subtrees reach; a point is then in it
# when it left the tree at a lambda at least the largest at which anything
# left the root itself (a point falling out, or its first split).
single_cluster_labels <- function(res, n) {
  tree <- res$tree
  root <- tree[["0"]]
  kids <- attr(tree, "cl_hierarchy")[["0"]]
  split_lambda <- if (is.null(kids)) 0 else 1 / root$eps_death
  root_stability <- sum(1 / root$eps) + root$n_children * split_lambda
  best_below <- if (is.null(kids)) 0 else sum(sapply(kids, function(k) {
    cl <- tree[[as.character(k)]]
    if (is.null(cl$score)) cl$stability else cl$score # a leaf has no score: its own stability
  }))
  if (root_stability < best_below) return(NULL) # the root is not selected: same as without the option
  leave_lambda <- numeric(n)
  for (cid in names(tree)) {
    cl <- tree[[cid]]
    if (length(cl$contains) > 0) leave_lambda[cl$contains] <- 1 / cl$eps
  }
  root_max <- max(c(1 / root$eps, split_lambda))
  ifelse(leave_lambda >= root_max, 0L, -1L)
}

num <- function(v) paste(sprintf("%.9g", v), collapse = ",")
write_case <- function(name, x, min_samples, min_cluster_size, allow_single, labels, res, note) {
  path <- file.path(out_dir, paste0("hdbscan_", name, ".json"))
  con <- file(path, "w")
  cat(sprintf('{"name":"%s","note":"%s",\n"min_samples":%d,"min_cluster_size":%d,"allow_single_cluster":%d,\n',
              name, note, min_samples, min_cluster_size, allow_single), file = con)
  cat(sprintf('"n":%d,"d":%d,\n"x":[%s],\n', nrow(x), ncol(x), num(t(x))), file = con)
  cat(sprintf('"labels":[%s],\n', paste(labels, collapse = ",")), file = con)
  cat(sprintf('"glosh":[%s],\n', num(res$glosh)), file = con)
  cat(sprintf('"tied":[%s]}\n', paste(res$tied, collapse = ",")), file = con)
  close(con)
  cat(sprintf("%-12s n %4d d %d min_samples %2d min_cluster_size %2d: %d clusters, %3d noise, %d tied; GLOSH: R's differs by up to %.3f\n",
              name, nrow(x), ncol(x), min_samples, min_cluster_size, length(unique(labels[labels >= 0])),
              sum(labels < 0), length(res$tied), max(abs(res$glosh - res$r_glosh))))
}

run_case <- function(name, x, min_samples, min_cluster_size, note) {
  res <- r_hdbscan(x, min_samples, min_cluster_size)
  if (min_samples == min_cluster_size) { # the package's entry point gives the same
    h <- hdbscan(x, minPts = min_samples)
    stopifnot(all(as_labels(h$cluster) == res$labels), all(abs(h$outlier_scores - res$r_glosh) < 1e-12))
  }
  write_case(name, x, min_samples, min_cluster_size, 0L, res$labels, res, note)
  invisible(res)
}

set.seed(20240611)

# Blobs of different densities and a uniform background.
blobs <- grid(rbind(
  cbind(rnorm(120, 0, 0.15), rnorm(120, 0, 0.15)),
  cbind(rnorm(160, 3, 0.5), rnorm(160, 0, 0.5)),
  cbind(rnorm(200, 0, 1.0), rnorm(200, 5, 1.0)),
  cbind(runif(40, -3, 6), runif(40, -3, 9))))
run_case("blobs", blobs, 10, 10, "three Gaussian blobs, sd 0.15, 0.5 and 1.0, plus 40 uniform points")
run_case("blobs_split", blobs, 5, 20, "the same blobs, min_samples 5 and min_cluster_size 20 (R steps)")

# Two moons.
moons <- function(n, noise) {
  t1 <- runif(n / 2, 0, pi); t2 <- runif(n / 2, 0, pi)
  cbind(c(cos(t1), 1 - cos(t2)), c(sin(t1), 0.5 - sin(t2))) + matrix(rnorm(2 * n, 0, noise), ncol = 2)
}
run_case("moons", grid(moons(400, 0.06)), 8, 8, "two interleaved half circles, noise sd 0.06")

# Many exact duplicates: every point of three blobs 4 times (fewer copies
# than min_samples, so core distances stay positive), in 3 dimensions.
base <- rbind(matrix(rnorm(3 * 40, 0, 0.3), ncol = 3), matrix(rnorm(3 * 40, 2, 0.3), ncol = 3),
              matrix(rnorm(3 * 40, c(0, 4, 0), 0.6), ncol = 3, byrow = TRUE))
dups <- grid(base[rep(seq_len(nrow(base)), each = 4), ])
run_case("duplicates", dups, 10, 10, "three blobs in 3-D, every point present 4 times")

# Cosine distance: three bundles of directions in 3-D at random lengths;
# R clusters the dist object 1 - cos.
dirs <- rbind(matrix(rnorm(3 * 90, c(1, 0, 0), 0.15), ncol = 3, byrow = TRUE),
              matrix(rnorm(3 * 90, c(0, 1, 0), 0.15), ncol = 3, byrow = TRUE),
              matrix(rnorm(3 * 60, c(1, 1, 1), 0.30), ncol = 3, byrow = TRUE))
cosx <- grid(dirs * runif(nrow(dirs), 0.5, 3))
unit <- cosx / sqrt(rowSums(cosx^2))
cosm <- 1 - unit %*% t(unit)
cosm[cosm < 0] <- 0
cosd <- as.dist(cosm)
res <- r_hdbscan(cosd, 10, 10, coords = cosx)
write_case("cosine", cosx, 10, 10, 0L, res$labels, res, "three bundles of directions, cosine distance")

# One blob with two density peaks (two unit Gaussians 2.5 apart): R splits
# it in two small clusters; with allow_single_cluster the root is the one
# cluster (labels derived from R's tree).
blob <- grid(rbind(cbind(rnorm(150, 0, 1), rnorm(150)), cbind(rnorm(150, 2.5, 1), rnorm(150))))
res <- run_case("blob", blob, 15, 15, "one blob with two density peaks: R's result, without allow_single_cluster")
single <- single_cluster_labels(res, nrow(blob))
stopifnot(!is.null(single), !is.null(attr(res$tree, "cl_hierarchy")[["0"]]))
write_case("blob_single", blob, 15, 15, 1L, single, res,
           "the same blob with allow_single_cluster: R's tree, the Python hdbscan library's rule")
