package io.egresstunnel.proto.config;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Checks, at startup, the files that flags name, so that a mistake is one line naming the flag, the
 * file and what is wrong ({@code --cert /x/agent.crt: no such file}) before anything starts. Each
 * check throws an {@link IllegalArgumentException}, a usage error for {@link CommandErrors}. What
 * these checks let through (a key that does not match its certificate) is still reported by the
 * code that loads the file.
 */
public final class FileFlags {
  /** Certificate, key, token and kubeconfig files are small; this is far beyond any of them. */
  private static final long MAX_SIZE = 16L * 1024 * 1024;

  private static final Pattern CERTIFICATE =
      Pattern.compile("-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", Pattern.DOTALL);

  private static final Pattern PRIVATE_KEY =
      Pattern.compile("-----BEGIN ([A-Z0-9]+ )?PRIVATE KEY-----");

  private FileFlags() {}

  /** A regular, readable, non-empty file; returns it (null stays null: the flag was not given). */
  public static Path readable(String flag, Path file) {
    if (file == null) {
      return null;
    }
    if (Files.isDirectory(file)) {
      throw problem(flag, file, "is a directory, not a file");
    }
    if (!Files.exists(file)) {
      throw problem(flag, file, "no such file");
    }
    if (!Files.isReadable(file)) {
      throw problem(flag, file, "permission denied");
    }
    long size;
    try {
      size = Files.size(file);
    } catch (IOException e) {
      throw problem(flag, file, CommandErrors.describe(e));
    }
    if (size == 0) {
      throw problem(flag, file, "the file is empty");
    }
    if (size > MAX_SIZE) {
      throw problem(flag, file, "the file is larger than " + MAX_SIZE / (1024 * 1024) + " MiB");
    }
    return file;
  }

  /** {@link #readable} and holding at least one PEM certificate, all of which parse. */
  public static Path certificates(String flag, Path file) {
    String text = read(flag, file);
    if (text == null) {
      return null;
    }
    Matcher block = CERTIFICATE.matcher(text);
    int count = 0;
    while (block.find()) {
      count++;
      try {
        CertificateFactory.getInstance("X.509")
            .generateCertificate(
                new ByteArrayInputStream(block.group().getBytes(StandardCharsets.ISO_8859_1)));
      } catch (CertificateException e) {
        throw problem(
            flag, file, "certificate " + count + " in it cannot be parsed: " + e.getMessage());
      }
    }
    if (count == 0) {
      throw problem(flag, file, "no PEM certificate in it (no -----BEGIN CERTIFICATE----- block)");
    }
    return file;
  }

  /** {@link #readable} and holding a PEM private key block. */
  public static Path privateKey(String flag, Path file) {
    String text = read(flag, file);
    if (text == null) {
      return null;
    }
    if (!PRIVATE_KEY.matcher(text).find()) {
      throw problem(flag, file, "no PEM private key in it (no -----BEGIN PRIVATE KEY----- block)");
    }
    return file;
  }

  private static String read(String flag, Path file) {
    if (readable(flag, file) == null) {
      return null;
    }
    try {
      return Files.readString(file, StandardCharsets.ISO_8859_1);
    } catch (IOException e) {
      throw problem(flag, file, CommandErrors.describe(e));
    }
  }

  /** {@code --flag FILE: why}, as a usage error. */
  public static IllegalArgumentException problem(String flag, Path file, String why) {
    return new IllegalArgumentException(flag + " " + file + ": " + why);
  }
}
