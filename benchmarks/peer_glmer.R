# lme4's glmer / lmer on a grouped_data.py file and its test rows (FILE.test.csv, written
# by grouped_data.py): random intercept and slope on x1, new tasks by allow.new.levels.
# Rscript benchmarks/peer_glmer.R /tmp/g/binary-200x60.csv
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$test <- read.csv(sub(".csv$", ".test.csv", args[1]))$test
d$task <- factor(d$task)
tr <- d[d$test == 0, ]
te <- d[d$test == 1, ]
binary <- all(d$y %in% c(0, 1))
start <- Sys.time()
if (binary) {
  m <- glmer(y ~ x0 + x1 + x2 + x3 + x4 + (1 + x1 | task), data = tr, family = binomial)
} else {
  m <- lmer(y ~ x0 + x1 + x2 + x3 + x4 + (1 + x1 | task), data = tr)
}
secs <- as.numeric(Sys.time() - start, units = "secs")
p <- predict(m, newdata = te, type = "response", allow.new.levels = TRUE)
if (binary) {
  r <- rank(p); pos <- sum(te$y == 1); neg <- sum(te$y == 0)
  auc <- (sum(r[te$y == 1]) - pos * (pos + 1) / 2) / (pos * neg)
  pc <- pmin(pmax(p, 1e-15), 1 - 1e-15)
  ll <- -mean(te$y * log(pc) + (1 - te$y) * log(1 - pc))
  cat(sprintf("glmer: AUC %.4f, log loss %.4f, %.1f s\n", auc, ll, secs))
} else {
  cat(sprintf("lmer: EV %.4f, %.1f s\n", 1 - mean((p - te$y)^2) / mean((te$y - mean(te$y))^2), secs))
}
