package io.egresstunnel.proto.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.util.concurrent.Callable;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

class CommandErrorsTest {

  @Command(name = "cmd", mixinStandardHelpOptions = true)
  static final class Cmd implements Callable<Integer> {
    @Option(names = "--name", required = true)
    String name;

    @Option(names = "--fail")
    String fail;

    @Override
    public Integer call() throws Exception {
      switch (fail == null ? "" : fail) {
        case "usage" -> throw new IllegalArgumentException("--name " + name + ": no good");
        case "bind" ->
            throw CommandErrors.bindFailure(
                "--listen",
                new InetSocketAddress("127.0.0.1", 8090),
                new BindException("Address already in use"));
        case "file" -> throw new AccessDeniedException("/etc/x");
        case "bug" -> throw new IllegalStateException("cannot happen");
        default -> {
          return 0;
        }
      }
    }
  }

  record Run(int exit, String err) {}

  private static Run run(String... args) {
    StringWriter err = new StringWriter();
    CommandLine cl = CommandErrors.install(new CommandLine(new Cmd()));
    cl.setErr(new PrintWriter(err, true));
    return new Run(cl.execute(args), err.toString());
  }

  @Test
  void eachKindOfErrorIsOneLineWithItsExitCode() {
    assertThat(run("--name", "a", "--fail", "usage"))
        .isEqualTo(new Run(2, "cmd: --name a: no good" + System.lineSeparator()));
    assertThat(run("--name", "a", "--fail", "bind"))
        .isEqualTo(
            new Run(
                1,
                "cmd: --listen 127.0.0.1:8090: address already in use" + System.lineSeparator()));
    assertThat(run("--name", "a", "--fail", "file"))
        .isEqualTo(new Run(1, "cmd: /etc/x: permission denied" + System.lineSeparator()));
    Run bug = run("--name", "a", "--fail", "bug");
    assertThat(bug.exit()).isEqualTo(1);
    assertThat(bug.err().lines())
        .containsExactly(
            "cmd: unexpected IllegalStateException: cannot happen (--log-level debug logs its"
                + " stack trace)");
  }

  @Test
  void anUnknownFlagComesBeforeAMissingRequiredOne() {
    Run r = run("--nmae", "a");
    assertThat(r.exit()).isEqualTo(2);
    assertThat(r.err().lines())
        .containsExactly(
            "cmd: unknown flag '--nmae'; did you mean '--name'?",
            "Try 'cmd --help' for the flags.");
    Run missing = run();
    assertThat(missing.err().lines())
        .containsExactly(
            "cmd: Missing required option: '--name=<name>'", "Try 'cmd --help' for the flags.");
  }

  @Test
  void describesIoFailuresInPlainWords() {
    assertThat(CommandErrors.describe(new NoSuchFileException("/x"))).isEqualTo("no such file");
    assertThat(
            CommandErrors.describe(
                new IOException("bind(..) failed with error(-98): Address already in use")))
        .isEqualTo("address already in use");
    assertThat(CommandErrors.describe(new IllegalArgumentException("--x: permission denied")))
        .isEqualTo("--x: permission denied");
    assertThat(io.egresstunnel.proto.net.Addresses.text(new InetSocketAddress("::1", 8091)))
        .isEqualTo("[0:0:0:0:0:0:0:1]:8091");
  }
}
