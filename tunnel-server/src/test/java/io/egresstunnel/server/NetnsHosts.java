package io.egresstunnel.server;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Hosts for multi-host tests: Linux network namespaces that the test creates and removes itself,
 * linked by veth pairs, with processes started inside them ({@code ip netns exec}). Every address
 * lives inside these namespaces; nothing leaves the machine. Needs root and iproute2.
 */
final class NetnsHosts implements AutoCloseable {
  private final String suffix = Long.toString(ProcessHandle.current().pid() % 100_000);
  private final List<String> namespaces = new ArrayList<>();
  private final List<Process> processes = new ArrayList<>();
  private final Path logs;

  NetnsHosts() throws IOException {
    assumeTrue(
        "root".equals(System.getProperty("user.name")),
        "network namespaces need root (CI runs as root)");
    logs = Files.createTempDirectory("netns-logs");
  }

  /** A new namespace called {@code name} (made unique per run), its loopback up. */
  String host(String name) throws Exception {
    String ns = "et-" + name + "-" + suffix;
    run("ip", "netns", "add", ns);
    namespaces.add(ns);
    exec(ns, "ip", "link", "set", "lo", "up");
    return ns;
  }

  /** Links {@code a} and {@code b} with a veth pair: {@code a} gets {@code .1/30}, b {@code .2}. */
  void link(String a, String b, String subnet24x) throws Exception {
    String va = "v" + Integer.toHexString((a + b).hashCode()).substring(0, 6) + "a";
    String vb = va.substring(0, va.length() - 1) + "b";
    run("ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b);
    exec(a, "ip", "addr", "add", subnet24x + ".1/30", "dev", va);
    exec(b, "ip", "addr", "add", subnet24x + ".2/30", "dev", vb);
    exec(a, "ip", "link", "set", va, "up");
    exec(b, "ip", "link", "set", vb, "up");
  }

  /** Adds {@code address/32} to the loopback of {@code ns}: an address only that host has. */
  void addLocalAddress(String ns, String address) throws Exception {
    exec(ns, "ip", "addr", "add", address + "/32", "dev", "lo");
  }

  /** Gives {@code ns} its own hosts file (ip netns exec mounts it over /etc/hosts). */
  void hostsFile(String ns, String content) throws IOException {
    Path dir = Path.of("/etc/netns", ns);
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("hosts"), "127.0.0.1 localhost\n" + content);
  }

  /** Runs {@code command} in {@code ns} and waits; fails with its output if it fails. */
  String exec(String ns, String... command) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", ns));
    cmd.addAll(List.of(command));
    return run(cmd.toArray(String[]::new));
  }

  /** As {@link #exec}, but returns the exit code and output without failing. */
  Result tryExec(String ns, String... command) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", ns));
    cmd.addAll(List.of(command));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new IllegalStateException("timed out: " + cmd);
    }
    return new Result(p.exitValue(), out);
  }

  record Result(int exit, String output) {}

  /** Starts {@code command} in {@code ns} in the background; its output goes to a log file. */
  Process start(String ns, String label, String... command) throws IOException {
    List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", ns));
    cmd.addAll(List.of(command));
    Path log = logs.resolve(label + ".log");
    Process p =
        new ProcessBuilder(cmd)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
            .start();
    processes.add(p);
    return p;
  }

  /** Starts a Java main class of this test classpath in {@code ns}. */
  Process startJava(String ns, String label, Class<?> main, String... args) throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add(main.getName());
    cmd.addAll(List.of(args));
    return start(ns, label, cmd.toArray(String[]::new));
  }

  /** The log of a process started as {@code label}. */
  String log(String label) throws IOException {
    Path f = logs.resolve(label + ".log");
    return Files.exists(f) ? Files.readString(f) : "";
  }

  private static String run(String... command) throws Exception {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException(String.join(" ", command) + " failed: " + out);
    }
    return out;
  }

  @Override
  public void close() throws Exception {
    for (Process p : processes) {
      p.descendants().forEach(ProcessHandle::destroyForcibly);
      p.destroyForcibly();
      p.waitFor(10, TimeUnit.SECONDS);
    }
    for (String ns : namespaces) {
      new ProcessBuilder("ip", "netns", "del", ns).start().waitFor(10, TimeUnit.SECONDS);
      Path dir = Path.of("/etc/netns", ns);
      Files.deleteIfExists(dir.resolve("hosts"));
      Files.deleteIfExists(dir);
    }
  }
}
