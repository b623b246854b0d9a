package io.egresstunnel.proto.config;

import io.egresstunnel.proto.net.Addresses;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.ConnectException;
import java.net.SocketAddress;
import java.net.UnknownHostException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * How both commands (and their subcommands) report a failure: one plain line on stderr, {@code
 * tunnel-agent: --cert /x/agent.crt: no such file}, and an exit code that tells a usage error from
 * a runtime failure. The stack trace is logged at DEBUG only ({@code --log-level debug}).
 *
 * <ul>
 *   <li>{@value #USAGE} (usage): a flag, value, config file or environment variable is wrong, or a
 *       file a flag names is missing or unusable. Parse errors print a hint to {@code --help}, not
 *       the whole usage; an unknown flag gets the closest real one. An {@link
 *       IllegalArgumentException} from the command is a usage error.
 *   <li>{@value #FAILURE} (runtime): the configuration is fine but something failed, such as a
 *       listener that cannot bind ({@code address already in use}). Any other exception.
 * </ul>
 *
 * docs/configuration.md ("Errors and exit codes") is the user's side of this.
 */
public final class CommandErrors {
  private static final Logger log = LoggerFactory.getLogger(CommandErrors.class);

  /** Exit code of a usage or configuration error. */
  public static final int USAGE = 2;

  /** Exit code of a runtime failure (a listener cannot bind, a server cannot be reached). */
  public static final int FAILURE = 1;

  private CommandErrors() {}

  /**
   * Makes {@code commandLine} and its subcommands report errors as described above. Call it after
   * the subcommands are added; {@link ConfigSources#install} may come before or after.
   */
  public static CommandLine install(CommandLine commandLine) {
    commandLine.setParameterExceptionHandler(CommandErrors::parseError);
    commandLine.setExecutionExceptionHandler((e, cl, parsed) -> executionError(e, cl, cl.getErr()));
    commandLine.getCommandSpec().exitCodeOnInvalidInput(USAGE);
    commandLine.getCommandSpec().exitCodeOnExecutionException(FAILURE);
    return commandLine;
  }

  private static int parseError(ParameterException e, String[] args) {
    CommandLine cl = e.getCommandLine();
    String name = cl.getCommandSpec().qualifiedName();
    PrintWriter err = cl.getErr();
    List<String> unmatched = cl.getUnmatchedArguments();
    if (e instanceof ConfigSources.ConfigException) {
      err.println(name + ": " + e.getMessage());
      err.println(
          "See '" + name + " --help' for the flags and docs/configuration.md for the config file.");
    } else if (e instanceof UnmatchedArgumentException || !unmatched.isEmpty()) {
      // picocli checks required flags before it complains about unknown ones: the unknown one is
      // the real mistake (a misspelt required flag), so it goes first.
      err.println(name + ": " + unmatched(cl, unmatched, e));
      err.println("Try '" + name + " --help' for the flags.");
    } else {
      String message = e.getMessage();
      if (cl.getCommandSpec().defaultValueProvider() instanceof ConfigSources sources) {
        message = sources.withOrigins(message, Arrays.asList(args));
      }
      err.println(name + ": " + message);
      err.println("Try '" + name + " --help' for the flags.");
    }
    err.flush();
    return USAGE;
  }

  /** "unknown flag '--max-agnets'; did you mean '--max-agents'?" */
  private static String unmatched(CommandLine cl, List<String> unmatched, ParameterException e) {
    String first = unmatched.isEmpty() ? "" : unmatched.get(0);
    for (String arg : unmatched) {
      if (arg.startsWith("-")) {
        String flag = arg.contains("=") ? arg.substring(0, arg.indexOf('=')) : arg;
        List<String> names = new ArrayList<>();
        for (OptionSpec option : cl.getCommandSpec().options()) {
          names.add(option.longestName().replaceFirst("^-+", ""));
        }
        String hint = ConfigSources.suggestion(flag, names, null);
        if (!hint.isEmpty()) {
          hint = hint.replace("did you mean '", "did you mean '--");
        } else if (e instanceof UnmatchedArgumentException u && !u.getSuggestions().isEmpty()) {
          List<String> some = u.getSuggestions().subList(0, Math.min(3, u.getSuggestions().size()));
          hint = "; did you mean " + String.join(" or ", some) + "?";
        }
        return "unknown flag '" + flag + "'" + hint;
      }
    }
    if (!cl.getSubcommands().isEmpty()) {
      String hint = ConfigSources.suggestion(first, cl.getSubcommands().keySet(), null);
      return "unknown command '" + first + "'" + hint;
    }
    return "unexpected argument '" + first + "' (this command takes flags only)";
  }

  private static int executionError(Exception e, CommandLine cl, PrintWriter err) {
    String name = cl.getCommandSpec().qualifiedName();
    Throwable cause = unwrap(e);
    int code = cause instanceof IllegalArgumentException ? USAGE : FAILURE;
    String message = describe(cause);
    if (!(cause instanceof IOException) && !(cause instanceof IllegalArgumentException)) {
      // Not an error this project reports on purpose: say what it is, and where to see more.
      message =
          "unexpected "
              + cause.getClass().getSimpleName()
              + (cause.getMessage() == null ? "" : ": " + cause.getMessage())
              + " (--log-level debug logs its stack trace)";
    }
    if (cause instanceof FileSystemException f && f.getFile() != null) {
      message = f.getFile() + ": " + message; // from the JDK: the reason alone does not say which
    }
    if (code == USAGE
        && cl.getCommandSpec().defaultValueProvider() instanceof ConfigSources sources) {
      message = sources.withOrigins(message);
    }
    err.println(name + ": " + message);
    err.flush();
    log.debug("{}: {}", name, message, cause);
    return code;
  }

  private static Throwable unwrap(Throwable e) {
    Throwable t = e;
    while ((t instanceof UncheckedIOException
            || t instanceof CompletionException
            || t instanceof ExecutionException)
        && t.getCause() != null) {
      t = t.getCause();
    }
    return t;
  }

  /**
   * What went wrong, in plain words: the message the project wrote, or for the JDK's and Netty's
   * I/O exceptions a short phrase ("no such file", "address already in use").
   */
  public static String describe(Throwable e) {
    Throwable t = unwrap(e);
    if (t instanceof Failure) {
      return t.getMessage();
    }
    if (t instanceof NoSuchFileException) {
      return "no such file";
    }
    if (t instanceof AccessDeniedException) {
      return "permission denied";
    }
    if (t instanceof NotDirectoryException) {
      return "not a directory";
    }
    if (t instanceof FileSystemException f && f.getReason() != null) {
      return lower(f.getReason());
    }
    String m = t.getMessage();
    String known = t instanceof IOException ? knownReason(m) : null;
    if (known != null) {
      return known;
    }
    if (t instanceof ConnectException && (m == null || m.isBlank())) {
      return "connection refused";
    }
    if (t instanceof BindException && (m == null || m.isBlank())) {
      return "cannot bind";
    }
    if (t instanceof UnknownHostException) {
      return "unknown host" + (m == null ? "" : " " + m);
    }
    if (m == null || m.isBlank()) {
      return t.getClass().getSimpleName();
    }
    return m;
  }

  /**
   * The gist of an I/O exception's message from the JDK or Netty's native transport ("bind(..)
   * failed with error(-98): Address already in use").
   */
  private static String knownReason(String message) {
    if (message == null) {
      return null;
    }
    String m = message.toLowerCase(Locale.ROOT);
    if (m.contains("address already in use")) {
      return "address already in use";
    }
    if (m.contains("cannot assign requested address")) {
      return "no network interface has this address";
    }
    if (m.contains("permission denied")) {
      return "permission denied";
    }
    if (m.contains("connection refused")) {
      return "connection refused";
    }
    if (m.contains("is a directory")) {
      return "is a directory";
    }
    return null;
  }

  private static String lower(String phrase) {
    return phrase.isEmpty()
        ? phrase
        : Character.toLowerCase(phrase.charAt(0)) + phrase.substring(1);
  }

  /**
   * The failure to listen on {@code address}, set by {@code flag}: {@code --connect-listen
   * 127.0.0.1:8090: address already in use}.
   */
  public static IOException bindFailure(String flag, SocketAddress address, Throwable cause) {
    return new Failure(flag + " " + Addresses.text(address) + ": " + describe(cause), cause);
  }

  /** A runtime failure whose message is already worded for the user: printed as it is. */
  public static final class Failure extends IOException {
    private static final long serialVersionUID = 1L;

    public Failure(String message) {
      super(message);
    }

    public Failure(String message, Throwable cause) {
      super(message, cause);
    }
  }
}
