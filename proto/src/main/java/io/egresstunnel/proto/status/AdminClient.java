package io.egresstunnel.proto.status;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/** Reads one path from an admin listener ({@code --admin HOST:PORT}) over plain HTTP. */
public final class AdminClient {
  private final String admin;
  private final HttpClient client =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  /** A client of the admin listener at {@code admin} ({@code HOST:PORT}). */
  public AdminClient(String admin) {
    this.admin = admin;
  }

  /** An answer: its status code and body. */
  public record Answer(int status, String body) {}

  /** Why an admin listener could not be read, in one line that names the URL. */
  public static final class AdminException extends Exception {
    private static final long serialVersionUID = 1L;

    AdminException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** The URL of {@code pathAndQuery} on this listener. */
  public URI uri(String pathAndQuery) {
    return URI.create("http://" + admin + pathAndQuery);
  }

  /** GETs {@code pathAndQuery}; any status is an answer, a connection failure is not. */
  public Answer get(String pathAndQuery) throws AdminException, InterruptedException {
    URI uri = uri(pathAndQuery);
    try {
      HttpResponse<String> r =
          client.send(
              HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(10)).GET().build(),
              HttpResponse.BodyHandlers.ofString());
      return new Answer(r.statusCode(), r.body());
    } catch (IOException | IllegalArgumentException e) {
      throw new AdminException(
          "--admin " + admin + ": " + io.egresstunnel.proto.config.CommandErrors.describe(e), e);
    }
  }

  /** GETs {@code pathAndQuery} and returns the body of a 200; anything else is an exception. */
  public String getOk(String pathAndQuery) throws AdminException, InterruptedException {
    Answer a = get(pathAndQuery);
    if (a.status() != 200) {
      throw new AdminException(uri(pathAndQuery) + " answered " + a.status(), null);
    }
    return a.body();
  }
}
