-- The application's tables as the Lokifi backend creates them: the operator manages, never creates them.
CREATE TABLE ai_messages (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    bigint NOT NULL,
    thread_id  bigint NOT NULL,
    role       text NOT NULL DEFAULT 'user',
    content    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at);

CREATE TABLE ai_threads (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL,
    title       text,
    is_archived boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
